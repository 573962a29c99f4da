package cluster

// RecoveryReport is the account of a cluster-wide recovery that the
// leader coordinated: each phase ran on every member, in order, and the
// next one started only once every member finished the last.
type RecoveryReport struct {
	// Plan names the recovery; it is recorded in the log.
	Plan   string        `json:"plan"`
	Phases []PhaseReport `json:"phases"`
	// Stopped names the member and step that failed, "" if none did.
	Stopped string `json:"stopped,omitempty"`
	// Consistent says every member ended at the same head at the same
	// applied index, with a clean integrity check.
	Consistent bool   `json:"consistent"`
	Head       string `json:"head,omitempty"`
}

// PhaseReport is one phase on every member.
type PhaseReport struct {
	Name  string         `json:"name"`
	Nodes []MemberResult `json:"nodes"`
}

// MemberResult is what a phase did on one member.
type MemberResult struct {
	ID     string `json:"id"`
	OK     bool   `json:"ok"`
	Detail any    `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}
