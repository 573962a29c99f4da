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
			"TimeoutStopSec=80s\n", "KillMode=mixed\n", "LimitNOFILE=65536\n",
			"EnvironmentFile=-/etc/nexus/nexus.env\n",
			"ProtectSystem=strict\n", "ReadWritePaths=/var/lib/nexus\n",
			wantProtectHome(exe, "/var/lib/nexus"), wantPrivateTmp(exe, "/var/lib/nexus"),
			"NoNewPrivileges=yes\n", "CapabilityBoundingSet=\n",
			"[Install]\nWantedBy=multi-user.target\n",
		}, []string{"AmbientCapabilities", "MemoryDenyWriteExecute=yes"}},
		{"flags", []string{"--data", "/srv/nexus data", "--addr", "0.0.0.0:443", "--user", "agents",
			"--shutdown-timeout", "1m", "--restart-sec", "1500ms", "--nofile", "4096", "--env-file", ""}, []string{
			`ExecStart=` + exe + ` serve --data "/srv/nexus data" --addr 0.0.0.0:443 --shutdown-timeout 1m0s` + "\n",
			"User=agents\n", "RestartSec=2s\n", "TimeoutStopSec=140s\n", "LimitNOFILE=4096\n",
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
		broken := writeFile(t, t.TempDir(), "nexus.yaml", "supervisor:\n  processes:\n    - {name: p, command: /bin/true, stop_timeout: 10}\n")
		out, code := runCLI("systemd-unit", "--config", broken)
		if code != 2 || !strings.Contains(out, broken+":3") || !strings.Contains(out, "stop_timeout") || strings.Contains(out, "[Service]") {
			t.Errorf("broken --config: exit %d, want 2 and the file's message without a unit:\n%s", code, out)
		}
		for _, args := range [][]string{{"--addr", "nowhere"}, {"--shutdown-timeout", "0s"}, {"--data", "/a\nb"}, {"extra"},
			{"--config", "nexus.yaml"}, {"--config", "/nonexistent/nexus.yaml"}} {
			if out, code := runCLI(append([]string{"systemd-unit"}, args...)...); code != 2 {
				t.Errorf("%q: exit %d, want 2: %s", args, code, out)
			}
		}
	})
}

// With --config, the unit passes the file to serve, opens the directories
// the file's agents and processes write (once each, the data directory
// covering those inside it), keeps the file read-only, and waits for the
// slowest process to stop on top of serve's own shutdown.
func TestSystemdUnit_Config(t *testing.T) {
	exe, err := filepath.EvalSymlinks(binary)
	if err != nil {
		t.Fatal(err)
	}
	example, err := filepath.Abs(filepath.Join("..", "..", "docs", "nexus.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	conf := writeFile(t, filepath.Join(data, "conf"), "nexus.yaml", `
supervisor:
  run_dir: /run/nexus-agents
  processes:
    - {name: a, command: /bin/true, log_dir: /var/log/nexus-agents, dir: /srv/work, stop_timeout: 20s}
    - {name: b, command: /bin/true, log_dir: /var/log/nexus-agents/, dir: ../work, stop_timeout: 65s}
agents:
  - {id: c, provider: command, command: /bin/true, dir: /srv/work/c}
`)
	inside := writeFile(t, data, "nexus.yaml", "supervisor:\n  processes:\n    - {name: p, command: /bin/true, log_dir: logs}\n")
	// The binary, the checkout and the temporary directory may lie where
	// PrivateTmp or ProtectHome would hide them.
	privateTmp := func(path string) string { return wantPrivateTmp(exe, path) }
	protectHome := func(path string) string { return wantProtectHome(exe, path) }
	for _, tc := range []struct {
		name string
		args []string
		want []string
		not  []string
	}{
		{"the example", []string{"--data", "/var/lib/nexus", "--config", example}, []string{
			"ExecStart=" + exe + " serve --data /var/lib/nexus --addr 127.0.0.1:7411 --shutdown-timeout 30s --config " + example + "\n",
			"ReadWritePaths=/var/lib/nexus /var/log/nexus /srv/coder /srv/lint\n",
			"StateDirectory=nexus\n", "LogsDirectory=nexus\n",
			"#   install -d -o nexus -g nexus /srv/coder\n",
			"TimeoutStopSec=90s\n", protectHome(example), privateTmp(example),
		}, []string{"ReadOnlyPaths", "install -d -o nexus -g nexus /var/l"}},
		{"a file in a subdirectory of the data", []string{"--data", data, "--config", conf, "--shutdown-timeout", "10s", "--user", ""}, []string{
			" --shutdown-timeout 10s --config " + conf + "\n",
			"ReadWritePaths=" + data + " /run/nexus-agents /var/log/nexus-agents /srv/work\n",
			"ReadOnlyPaths=" + filepath.Dir(conf) + "\n",
			"LogsDirectory=nexus-agents\n",
			"#   install -d " + data + "\n", "#   install -d /run/nexus-agents\n", "#   install -d /srv/work\n",
			"TimeoutStopSec=105s\n", protectHome(data), privateTmp(data),
		}, []string{"StateDirectory", "install -d /var/log"}},
		{"a file in the data directory itself", []string{"--data", data, "--config", inside}, []string{
			"ReadWritePaths=" + data + "\n", "ReadOnlyPaths=" + inside + "\n", "TimeoutStopSec=90s\n",
		}, []string{"LogsDirectory"}},
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
}

// wantPrivateTmp is the unit's PrivateTmp line (or the comment that
// replaces it) for a service using paths.
func wantPrivateTmp(paths ...string) string {
	for _, p := range paths {
		if strings.HasPrefix(p, "/tmp/") || strings.HasPrefix(p, "/var/tmp/") {
			return "# No PrivateTmp: the service's own /tmp would hide " + p + ", which it uses.\n"
		}
	}
	return "PrivateTmp=yes\n"
}

// wantProtectHome is the unit's ProtectHome line for a service using
// paths.
func wantProtectHome(paths ...string) string {
	for _, p := range paths {
		for _, home := range []string{"/home/", "/root/", "/run/user/"} {
			if strings.HasPrefix(p, home) {
				return "ProtectHome=read-only\n"
			}
		}
	}
	return "ProtectHome=yes\n"
}

// writeFile writes a file named name holding src in dir, which it
// creates, and returns its path.
func writeFile(t *testing.T, dir, name, src string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
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
