package nexus_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/nexus-mem/nexus"
)

func TestDetailOf(t *testing.T) {
	cause := errors.New("open /srv/nexus/LOCK: permission denied")
	for _, c := range []struct {
		name string
		err  error
		want nexus.ErrorDetail
	}{
		{"application error", nexus.Errorf(nexus.ENotFound, "context %s not found", "X"), nexus.ErrorDetail{Code: nexus.ENotFound, Message: "context X not found"}},
		{"wrapped", fmt.Errorf("get: %w", nexus.WrapError(nexus.ERateLimited, cause, "slow down")), nexus.ErrorDetail{Code: nexus.ERateLimited, Message: "slow down"}},
		{"internal with a message", nexus.WrapError(nexus.EInternal, cause, "reading the lock"), nexus.ErrorDetail{Code: nexus.EInternal, Message: "internal error"}},
		{"plain error", cause, nexus.ErrorDetail{Code: nexus.EInternal, Message: "internal error"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := nexus.DetailOf(c.err); got != c.want {
				t.Errorf("DetailOf(%v) = %+v, want %+v", c.err, got, c.want)
			}
		})
	}
}

func TestErrorBody_json(t *testing.T) {
	b, err := json.Marshal(nexus.ErrorBody{Error: nexus.DetailOf(nexus.Errorf(nexus.ERateLimited, "wait 7s"))})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"error":{"code":"rate_limited","message":"wait 7s"}}`; string(b) != want {
		t.Errorf("%s, want %s", b, want)
	}
}
