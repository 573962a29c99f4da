package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// unitConfig is what `nexus systemd-unit` needs to write a unit.
type unitConfig struct {
	exe, data, addr, user, envFile string
	shutdownWait, restartWait      time.Duration
	nofile                         int
}

func runSystemdUnit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("systemd-unit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus systemd-unit [flags] > /etc/systemd/system/nexus.service\n\nPrints a systemd unit that runs this binary's `nexus serve`.\n\nFlags:")
		fs.PrintDefaults()
	}
	c := unitConfig{}
	fs.StringVar(&c.data, "data", env("NEXUS_DATA", "/var/lib/nexus"), "data directory of the server (env NEXUS_DATA)")
	fs.StringVar(&c.addr, "addr", env("NEXUS_ADDR", defaultAddr), "listen address host:port (env NEXUS_ADDR)")
	fs.StringVar(&c.user, "user", "nexus", "dedicated user (and group) the server runs as; root or empty: no User= line")
	fs.StringVar(&c.envFile, "env-file", "/etc/nexus/nexus.env", "optional environment file (NEXUS_TOKEN, provider keys); empty: none")
	fs.DurationVar(&c.shutdownWait, "shutdown-timeout", 30*time.Second, "serve's --shutdown-timeout; systemd waits longer before SIGKILL")
	fs.DurationVar(&c.restartWait, "restart-sec", 5*time.Second, "wait before systemd restarts a failed server")
	fs.IntVar(&c.nofile, "nofile", 65536, "open file limit (LimitNOFILE)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		return usagef("invalid --addr %q: %v", c.addr, err)
	}
	if c.shutdownWait <= 0 || c.restartWait <= 0 || c.nofile <= 0 {
		return usagef("--shutdown-timeout, --restart-sec and --nofile must be positive")
	}
	for _, v := range []string{c.data, c.addr, c.user, c.envFile} {
		if strings.ContainsFunc(v, unicode.IsControl) {
			return usagef("%q: a unit file cannot hold control characters", v)
		}
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return fmt.Errorf("find the path of this binary: %w", err)
	}
	c.exe = exe
	if c.data, err = filepath.Abs(c.data); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, systemdUnit(c))
	return err
}

// systemdUnit renders the unit for c.
func systemdUnit(c unitConfig) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	stopWait := c.shutdownWait + 15*time.Second
	w("# nexus.service, written by `nexus systemd-unit`.")
	w("#   nexus systemd-unit > /etc/systemd/system/nexus.service")
	if c.user != "" && c.user != "root" {
		w("#   useradd --system --home-dir %s --shell /usr/sbin/nologin %s", c.data, c.user)
	}
	w("#   systemctl daemon-reload && systemctl enable --now nexus")
	w("[Unit]")
	w("Description=Nexus: shared, durable, versioned memory for AI agents")
	w("Wants=network-online.target")
	w("After=network-online.target")
	w("# Give up after 5 failed starts in 5 minutes rather than restart for ever.")
	w("StartLimitIntervalSec=5min")
	w("StartLimitBurst=5")
	w("")
	w("[Service]")
	w("Type=exec")
	if c.user != "" && c.user != "root" {
		w("User=%s", c.user)
		w("Group=%s", c.user)
	}
	if state, ok := strings.CutPrefix(c.data, "/var/lib/"); ok && state != "" && !strings.Contains(state, "/") {
		w("# Created (owned by the service's user) before the server starts.")
		w("StateDirectory=%s", state)
	}
	if c.envFile != "" {
		w("# NEXUS_TOKEN and the API keys of agents (e.g. OPENAI_API_KEY) go in this file, mode 0600; '-': it may be absent.")
		w("EnvironmentFile=-%s", systemdQuote(c.envFile))
	}
	w("ExecStart=%s serve --data %s --addr %s --shutdown-timeout %s",
		execWord(c.exe), execWord(c.data), execWord(c.addr), c.shutdownWait)
	w("Restart=on-failure")
	w("RestartSec=%s", systemdSeconds(c.restartWait))
	w("# Exit code %d: the node stopped itself because a critical component is damaged", fsckDamaged)
	w("# beyond what it can repair; a restart would only loop on the damage. systemd")
	w("# does not restart it: run `nexus recover --data %s`, then start it again.", c.data)
	w("# Exit code 2: the command line or the --config file is wrong (the message says")
	w("# where); a restart would fail the same way until it is fixed.")
	w("RestartPreventExitStatus=2 %d", fsckDamaged)
	w("# serve drains in-flight requests for up to --shutdown-timeout after SIGTERM,")
	w("# then closes the store; systemd waits longer than that before SIGKILL.")
	w("TimeoutStopSec=%s", systemdSeconds(stopWait))
	w("# SIGTERM to the server alone: it stops the agent processes it supervises itself.")
	w("KillMode=mixed")
	w("LimitNOFILE=%d", c.nofile)
	w("")
	w("# Hardening. Supervised agent processes run under the same rules, which is why")
	w("# MemoryDenyWriteExecute (it breaks JIT runtimes such as Node.js) is not set.")
	w("NoNewPrivileges=yes")
	w("ProtectSystem=strict")
	w("ReadWritePaths=%s", systemdQuote(c.data))
	w("ProtectHome=%s", protectHome(c.data))
	w("PrivateTmp=yes")
	w("PrivateDevices=yes")
	w("ProtectKernelTunables=yes")
	w("ProtectKernelModules=yes")
	w("ProtectKernelLogs=yes")
	w("ProtectControlGroups=yes")
	w("ProtectClock=yes")
	w("ProtectHostname=yes")
	w("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6")
	w("RestrictNamespaces=yes")
	w("RestrictRealtime=yes")
	w("RestrictSUIDSGID=yes")
	w("LockPersonality=yes")
	w("SystemCallArchitectures=native")
	if lowPort(c.addr) {
		w("# The port is below 1024.")
		w("AmbientCapabilities=CAP_NET_BIND_SERVICE")
		w("CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
	} else {
		w("CapabilityBoundingSet=")
	}
	w("UMask=0027")
	w("")
	w("[Install]")
	w("WantedBy=multi-user.target")
	return b.String()
}

// protectHome keeps home directories out of reach unless the data lives
// there, in which case they are read-only (ReadWritePaths opens the data).
func protectHome(data string) string {
	for _, home := range []string{"/home/", "/root/", "/run/user/"} {
		if strings.HasPrefix(data+"/", home) {
			return "read-only"
		}
	}
	return "yes"
}

// lowPort reports whether addr's port needs CAP_NET_BIND_SERVICE.
func lowPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p > 0 && p < 1024
}

// systemdSeconds renders a duration as whole seconds, rounded up.
func systemdSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10) + "s"
}

// systemdQuote makes one word of a unit file setting: specifiers (%)
// escaped, and double quotes around a word holding spaces, quotes or
// backslashes.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// execWord makes one word of ExecStart, where $ also starts a variable.
func execWord(s string) string {
	return systemdQuote(strings.ReplaceAll(s, "$", "$$"))
}
