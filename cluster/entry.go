package cluster

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nexus-mem/nexus"
)

// kind is the first byte of a log entry.
type kind byte

// Kinds of log entries.
const (
	kindPut     kind = 1 // contexts to commit
	kindRestore kind = 2 // a point-in-time restore of every node
	kindMember  kind = 3 // a member's API address
	kindPhase   kind = 4 // one phase of a cluster recovery plan
	kindBase    kind = 5 // the history a cluster started from
)

// baseEntry is the first entry of a cluster bootstrapped over a store that
// already held contexts: every node makes main that history's head before
// applying what follows (a node that lacks it fetches it from a member).
type baseEntry struct {
	Head string `json:"head"`
	From string `json:"from"` // the API of the node that proposed it, which has it
}

// putEntry carries contexts stamped by the leader.
type putEntry struct {
	Contexts []*nexus.Context `json:"contexts"`
}

// restoreEntry rewinds every node to the state at a time.
type restoreEntry struct {
	At time.Time `json:"at"`
}

// Member is a node of the cluster as the log knows it.
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIURL   string `json:"api_url"`
}

// phaseEntry asks every node to run one phase of a recovery plan.
type phaseEntry struct {
	Plan  string `json:"plan"`
	Phase string `json:"phase"`
}

func encode(k kind, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(k)}, b...), nil
}

// decode reads an entry; an entry this version does not know is an
// error (every node runs the same version of the log format).
func decode(data []byte) (kind, any, error) {
	if len(data) == 0 {
		return 0, nil, fmt.Errorf("empty log entry")
	}
	var v any
	switch k := kind(data[0]); k {
	case kindPut:
		v = &putEntry{}
	case kindRestore:
		v = &restoreEntry{}
	case kindMember:
		v = &Member{}
	case kindPhase:
		v = &phaseEntry{}
	case kindBase:
		v = &baseEntry{}
	default:
		return 0, nil, fmt.Errorf("unknown log entry kind %d", k)
	}
	if err := json.Unmarshal(data[1:], v); err != nil {
		return 0, nil, fmt.Errorf("log entry of kind %d: %w", data[0], err)
	}
	return kind(data[0]), v, nil
}
