package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `nexus systemd-unit` prints a unit that runs this very binary with the
// given flags, does not loop on exit code 4, waits longer than serve's
// shutdown before SIGKILL, and passes `systemd-analyze verify` where
// systemd is installed.
func TestSystemdUnit(t *testing.T) {
	exe, err := filepath.EvalSymlinks(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"defaults", []string{"--data", "/var/lib/nexus"}, []string{
			"ExecStart=" + exe + " serve --data /var/lib/nexus --addr 127.0.0.1:7411 --shutdown-timeout 30s\n",
			"Type=exec\n", "User=nexus\n", "Group=nexus\n", "StateDirectory=nexus\n",
			"Restart=on-failure\n", "RestartSec=5s\n",
			"# Exit code 4: the node stopped itself because a critical component is damaged\n",
			"RestartPreventExitStatus=2 4\n",
			"TimeoutStopSec=45s\n", "KillMode=mixed\n", "LimitNOFILE=65536\n",
			"EnvironmentFile=-/etc/nexus/nexus.env\n",
			"ProtectSystem=strict\n", "ReadWritePaths=/var/lib/nexus\n", "ProtectHome=yes\n",
			"NoNewPrivileges=yes\n", "CapabilityBoundingSet=\n",
			"[Install]\nWantedBy=multi-user.target\n",
		}, []string{"AmbientCapabilities", "MemoryDenyWriteExecute=yes"}},
		{"flags", []string{"--data", "/srv/nexus data", "--addr", "0.0.0.0:443", "--user", "agents",
			"--shutdown-timeout", "1m", "--restart-sec", "1500ms", "--nofile", "4096", "--env-file", ""}, []string{
			`ExecStart=` + exe + ` serve --data "/srv/nexus data" --addr 0.0.0.0:443 --shutdown-timeout 1m0s` + "\n",
			"User=agents\n", "RestartSec=2s\n", "TimeoutStopSec=75s\n", "LimitNOFILE=4096\n",
			`ReadWritePaths="/srv/nexus data"` + "\n",
			"AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		}, []string{"EnvironmentFile", "StateDirectory", "CapabilityBoundingSet=\n"}},
		{"data in a home directory, as root", []string{"--data", "/home/ann/nexus", "--user", "root"}, []string{
			"ProtectHome=read-only\n", "ReadWritePaths=/home/ann/nexus\n",
		}, []string{"User=", "useradd"}},
		{"specifiers and variables escaped", []string{"--data", "/srv/100%$x"}, []string{
			"--data /srv/100%%$$x ", "ReadWritePaths=/srv/100%%$x\n",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runCLI(append([]string{"systemd-unit"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("missing %q in:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("unexpected %q in:\n%s", n, out)
				}
			}
			verifyUnit(t, out)
		})
	}
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{{"--addr", "nowhere"}, {"--shutdown-timeout", "0s"}, {"--data", "/a\nb"}, {"extra"}} {
			if out, code := runCLI(append([]string{"systemd-unit"}, args...)...); code != 2 {
				t.Errorf("%q: exit %d, want 2: %s", args, code, out)
			}
		}
	})
}

// verifyUnit runs `systemd-analyze verify` on a unit when systemd is
// installed; it must accept the unit without a word.
func verifyUnit(t *testing.T, unit string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: unit not verified")
		return
	}
	path := filepath.Join(t.TempDir(), "nexus.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\nunit:\n%s", err, out, unit)
	}
}
