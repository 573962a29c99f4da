package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/secrets"
)

// maxStderr is how much of the end of a command's stderr is kept.
const maxStderr = 4 << 10

// commandWaitDelay is how long a command may keep its output open after
// it exits or is killed.
const commandWaitDelay = time.Second

// commandProvider runs a local command per request: the request as JSON
// on stdin, the answer as JSON on stdout. Its state is sent with each
// request and replaced by the state an answer returns.
type commandProvider struct {
	id, model string
	argv      []string
	probe     []string
	dir       string
	env       []string // added to the minimal environment
	key       Secret
	redactor  *nexus.Redactor

	mu    sync.Mutex
	state json.RawMessage
}

func newCommand(cfg Config, key Secret) *commandProvider {
	c := &commandProvider{id: cfg.ID, model: cfg.Model, argv: cfg.Command, probe: cfg.Probe, dir: cfg.Dir, key: key, redactor: cfg.Redactor}
	for k, v := range cfg.Env {
		c.env = append(c.env, k+"="+v)
	}
	sort.Strings(c.env)
	if !key.IsZero() && cfg.Key.Env != "" {
		c.env = append(c.env, cfg.Key.Env+"="+key.Value())
	}
	return c
}

func (c *commandProvider) Complete(ctx context.Context, p Prompt) (*Completion, error) {
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	in, err := json.Marshal(commandRequest{Agent: c.id, Model: c.model, System: p.System, Messages: p.Messages,
		MaxTokens: p.MaxTokens, State: state})
	if err != nil {
		return nil, errorf(ClassBadRequest, "encoding the command request: %v", err)
	}
	out, err := c.run(ctx, c.argv, in)
	if err != nil {
		return nil, err
	}
	comp, newState, err := decodeCommand(out, c.key)
	if err != nil {
		return nil, err
	}
	if newState != nil {
		c.mu.Lock()
		c.state = newState
		c.mu.Unlock()
	}
	return comp, nil
}

// Heartbeat runs the probe, which must exit 0.
func (c *commandProvider) Heartbeat(ctx context.Context) error {
	_, err := c.run(ctx, c.probe, nil)
	return err
}

// providerState and restoreProvider give the Runner the command's state.
func (c *commandProvider) providerState() json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *commandProvider) restoreProvider(state json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = state
}

// run runs argv with stdin and returns its stdout. The process, and
// every process it started, is killed when ctx is done.
func (c *commandProvider) run(ctx context.Context, argv []string, stdin []byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.dir
	cmd.Env = secrets.ChildEnv(c.env...)
	cmd.Stdin = bytes.NewReader(stdin)
	stdout, stderr := &capBuffer{max: maxAnswer}, &tailBuffer{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = commandWaitDelay
	killGroupOnCancel(cmd)
	err := cmd.Run()
	name := argv[0]
	why := func() string {
		if len(stderr.buf) == 0 {
			return "no stderr"
		}
		return "stderr: " + c.redactor.Redact(quoteTail(stderr.buf, c.key))
	}
	var exit *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, &Error{Class: ClassTimeout,
			Message: fmt.Sprintf("command %s did not answer in time and was killed (%s)", name, why())}
	case ctx.Err() != nil:
		return nil, &Error{Class: ClassCanceled, Err: ctx.Err(), Message: fmt.Sprintf("command %s canceled and killed", name)}
	case errors.As(err, &exit):
		return nil, c.exitError(name, exit, stdout.buf, why())
	case errors.Is(err, exec.ErrWaitDelay):
		return nil, &Error{Class: ClassServer, Err: err,
			Message: fmt.Sprintf("command %s exited but kept its output open for over %v (a process it started?)", name, commandWaitDelay)}
	case err != nil:
		return nil, &Error{Class: ClassConfig, Err: err, Message: fmt.Sprintf("cannot run command %s: %s", name, c.key.redact(err.Error()))}
	case stdout.over:
		return nil, errorf(ClassMalformed, "command %s wrote more than %d bytes", name, maxAnswer)
	}
	return stdout.buf, nil
}

// exitError is the error of a command that exited with a status other
// than 0: the error its stdout describes, if any, else a server error.
func (c *commandProvider) exitError(name string, exit *exec.ExitError, stdout []byte, why string) *Error {
	status := exit.ExitCode()
	how := fmt.Sprintf("exited with status %d", status)
	if status < 0 {
		how = "was killed (" + exit.String() + ")"
	}
	class := ClassServer
	if _, _, err := decodeCommand(stdout, c.key); err != nil {
		if e := asError(err); e.Class != ClassMalformed {
			class = e.Class
			why = e.Message + "; " + why
		}
	}
	return &Error{Class: class, Status: status, Err: exit, Message: fmt.Sprintf("command %s %s: %s", name, how, why)}
}

// capBuffer keeps the first max bytes written to it and notes whether
// there were more; it never refuses a write, so the writer never blocks.
type capBuffer struct {
	max  int
	buf  []byte
	over bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	room := b.max - len(b.buf)
	if len(p) > room {
		b.over = true
		b.buf = append(b.buf, p[:max(room, 0)]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if extra := len(b.buf) - b.max; extra > 0 {
		b.buf = append(b.buf[:0], b.buf[extra:]...)
	}
	return len(p), nil
}
