package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Genesis is the Prev of the first record of a log: 64 zeros.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Kind says what a record is.
type Kind string

// Kinds of records.
const (
	KindIntent      Kind = "intent"       // an admin action is about to run
	KindOutcome     Kind = "outcome"      // an admin action ran (Intent names its intent)
	KindAuthFailure Kind = "auth_failure" // a request failed authentication
)

// Outcomes of an action.
const (
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
	OutcomeRefused = "refused"
)

// Fields are the parameters or the result of an action: names and short
// values, never secrets.
type Fields map[string]string

// Record is one line of the audit log. Field order is the order on disk.
type Record struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      Kind      `json:"kind"`
	Action    string    `json:"action"`
	Principal string    `json:"principal"`
	Remote    string    `json:"remote,omitempty"`
	Route     string    `json:"route,omitempty"`
	Params    Fields    `json:"params,omitempty"`
	Intent    int64     `json:"intent,omitempty"`
	Outcome   string    `json:"outcome,omitempty"`
	Error     string    `json:"error,omitempty"`
	Result    Fields    `json:"result,omitempty"`
	Prev      string    `json:"prev"`
}

// encode is the line of r, without its newline.
func (r *Record) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode audit record: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Hash is the hash of a line (without its newline), as the next record's
// Prev holds it: the hex SHA-256 that `sha256sum` prints.
func Hash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// Head is what a verified log ends with.
type Head struct {
	Records int64  // complete records
	Seq     int64  // the newest record's seq (0 for an empty log)
	Hash    string // the newest record's hash (Genesis for an empty log)
	Torn    int    // bytes of an unfinished last line (a write a crash cut short), not counted
}

// ChainError is the first record that breaks the chain.
type ChainError struct {
	Line   int64  // 1-based line number in the file
	Seq    int64  // the seq the record says it has (0 if unreadable)
	Reason string // what is wrong, and what that means
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit record on line %d (seq %d) breaks the chain: %s", e.Line, e.Seq, e.Reason)
}

// Verify reads a log from r, checks its chain and calls fn (if not nil)
// with every record in order. It returns the head of the log, or the
// *ChainError of the first record that breaks the chain, or fn's error.
func Verify(r io.Reader, fn func(rec Record) error) (Head, error) {
	head := Head{Hash: Genesis}
	torn, err := scan(r, func(line []byte) error {
		n := head.Records + 1
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return &ChainError{Line: n, Reason: fmt.Sprintf("not a record (%v): the line was edited or damaged", err)}
		}
		if rec.Prev != head.Hash {
			return &ChainError{Line: n, Seq: rec.Seq, Reason: chainReason(n)}
		}
		if rec.Seq != head.Seq+1 {
			return &ChainError{Line: n, Seq: rec.Seq, Reason: fmt.Sprintf("seq %d follows seq %d: records were deleted, inserted or reordered", rec.Seq, head.Seq)}
		}
		head.Records, head.Seq, head.Hash = n, rec.Seq, Hash(line)
		if fn != nil {
			return fn(rec)
		}
		return nil
	})
	head.Torn = torn
	return head, err
}

func chainReason(line int64) string {
	if line == 1 {
		return "the first record's prev is not the genesis hash: records before it were deleted"
	}
	return fmt.Sprintf("its prev is not the SHA-256 of line %d: that record was edited, or records were deleted, inserted or reordered", line-1)
}

// scan calls fn with each complete line of r (without its newline) and
// returns the length of an unfinished last line.
func scan(r io.Reader, fn func(line []byte) error) (torn int, err error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return len(line), nil
		}
		if err != nil {
			return 0, fmt.Errorf("read audit log: %w", err)
		}
		if err := fn(line[:len(line)-1]); err != nil {
			return 0, err
		}
	}
}
