package embed

import (
	"context"
	"time"
)

// DecodeResponse and ErrorBodyMessage expose the wire decoders to the fuzz
// tests.
var (
	DecodeResponse   = decodeResponse
	ErrorBodyMessage = errorBodyMessage
)

// SetSleep replaces the pause between retries, so that tests can see the
// delays without waiting them out. Call it before the first Embed.
func SetSleep(o *OpenAI, sleep func(context.Context, time.Duration) error) { o.policy.Sleep = sleep }
