package main

import (
	"strings"
	"testing"
	"time"
)

// ProtectHome and PrivateTmp follow the paths the service uses, the
// binary's among them: a binary in a home directory or under /tmp must
// stay visible to the service, or it cannot start.
func TestSystemdUnit_BinaryPath(t *testing.T) {
	for _, tc := range []struct {
		exe, data string
		want      []string
		not       []string
	}{
		{"/usr/local/bin/nexus", "/var/lib/nexus", []string{"ProtectHome=yes\n", "PrivateTmp=yes\n"}, []string{"No PrivateTmp"}},
		{"/home/ann/go/bin/nexus", "/var/lib/nexus", []string{
			"# Home directories read-only, not hidden: the service uses /home/ann/go/bin/nexus.\nProtectHome=read-only\n",
			"PrivateTmp=yes\n",
		}, []string{"ProtectHome=yes"}},
		{"/root/bin/nexus", "/srv/nexus", []string{"ProtectHome=read-only\n"}, []string{"ProtectHome=yes"}},
		{"/run/user/1000/nexus", "/srv/nexus", []string{"ProtectHome=read-only\n"}, []string{"ProtectHome=yes"}},
		{"/tmp/build/nexus", "/var/lib/nexus", []string{
			"ProtectHome=yes\n",
			"# No PrivateTmp: the service's own /tmp would hide /tmp/build/nexus, which it uses.\n",
		}, []string{"PrivateTmp=yes"}},
		{"/var/tmp/nexus", "/var/lib/nexus", []string{"# No PrivateTmp: the service's own /tmp would hide /var/tmp/nexus, which it uses.\n"},
			[]string{"PrivateTmp=yes"}},
		{"/usr/bin/nexus", "/home/ann/nexus", []string{
			"# Home directories read-only, not hidden: the service uses /home/ann/nexus.\nProtectHome=read-only\n",
			"PrivateTmp=yes\n",
		}, nil},
		{"/usr/bin/nexus", "/var/tmp/nexus", []string{"ProtectHome=yes\n", "# No PrivateTmp: the service's own /tmp would hide /var/tmp/nexus, which it uses.\n"},
			[]string{"PrivateTmp=yes"}},
		{"/homework/nexus", "/tmpdata", []string{"ProtectHome=yes\n", "PrivateTmp=yes\n"}, nil},
	} {
		t.Run(tc.exe+" "+tc.data, func(t *testing.T) {
			unit := systemdUnit(unitConfig{exe: tc.exe, data: tc.data, addr: defaultAddr, user: "nexus",
				shutdownWait: 30 * time.Second, restartWait: 5 * time.Second, nofile: 1024, writable: []string{tc.data}})
			for _, w := range tc.want {
				if !strings.Contains(unit, w) {
					t.Errorf("missing %q in:\n%s", w, unit)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(unit, n) {
					t.Errorf("unexpected %q in:\n%s", n, unit)
				}
			}
		})
	}
}
