package retry_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/nexus-mem/nexus/internal/retry"
)

func TestClassify(t *testing.T) {
	want := map[retry.Class][]int{
		retry.Done:  {200, 201, 204, 299},
		retry.Retry: {408, 409, 425, 429, 500, 502, 503, 504, 507, 520, 599},
		retry.Fail:  {100, 301, 304, 400, 401, 403, 404, 405, 413, 422, 501, 505, 600},
	}
	for class, statuses := range want {
		for _, s := range statuses {
			if got := retry.Classify(s); got != class {
				t.Errorf("Classify(%d) = %v, want %v", s, got, class)
			}
		}
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestClassifyError(t *testing.T) {
	post := func(err error) error { return &url.Error{Op: "Post", URL: "http://x/v1/embeddings", Err: err} }
	for _, tc := range []struct {
		name string
		err  error
		want retry.Class
	}{
		{"nil", nil, retry.Done},
		{"canceled", post(context.Canceled), retry.Fail},
		{"deadline", post(context.DeadlineExceeded), retry.Retry},
		{"eof", post(io.EOF), retry.Retry},
		{"truncated body", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), retry.Retry},
		{"reset", post(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), retry.Retry},
		{"refused", post(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), retry.Retry},
		{"broken pipe", post(syscall.EPIPE), retry.Retry},
		{"timeout", post(timeoutError{}), retry.Retry},
		{"temporary dns", post(&net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}), retry.Retry},
		{"no such host", post(&net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}), retry.Fail},
		{"bad certificate", post(x509.UnknownAuthorityError{}), retry.Fail},
		{"bad scheme", post(errors.New(`unsupported protocol scheme "ftp"`)), retry.Fail},
		{"plain", errors.New("boom"), retry.Fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retry.ClassifyError(tc.err); got != tc.want {
				t.Errorf("ClassifyError(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	t.Run("real refused connection", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		resp, err := http.Post("http://"+addr+"/", "text/plain", nil)
		if err == nil {
			resp.Body.Close()
			t.Skip("something is listening on the closed port")
		}
		if got := retry.ClassifyError(err); got != retry.Retry {
			t.Errorf("ClassifyError(%v) = %v, want retry", err, got)
		}
	})
}

func TestClass_String(t *testing.T) {
	for c, want := range map[retry.Class]string{retry.Done: "done", retry.Retry: "retry", retry.Fail: "fail", 7: "Class(7)"} {
		if got := c.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(c), got, want)
		}
	}
}
