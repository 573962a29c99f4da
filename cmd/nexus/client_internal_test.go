package main

import (
	"fmt"
	"testing"
)

// A client verb with no server to talk to names the URL, the cause and
// what to run.
func TestRun_ServerDown(t *testing.T) {
	server := closedURL(t)
	for _, args := range [][]string{{"put", "hello"}, {"ls"}, {"search", "q"}} {
		_, errs, code := runIn(t, append(args, "--server", server)...)
		want := fmt.Sprintf("nexus %s: no server at %s: connection refused\n"+
			"Start one with `nexus serve` (it listens on 127.0.0.1:7411 by default), or point --server (env NEXUS_SERVER) at the running one.\n", args[0], server)
		if code != 1 || errs != want {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant exit 1 and:\n%s", args, code, errs, want)
		}
	}
}
