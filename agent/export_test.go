package agent

// The decoders of outside input, for the fuzz tests.
var (
	DecodeOpenAI     = decodeOpenAI
	DecodeAnthropic  = decodeAnthropic
	DecodeCommand    = decodeCommand
	ErrorBodyMessage = errorBodyMessage
	ParseSecrets     = parseSecrets
)
