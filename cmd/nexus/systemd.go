package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nexus-mem/nexus/config"
)

// unitConfig is what `nexus systemd-unit` needs to write a unit.
type unitConfig struct {
	exe, data, addr, user, envFile string
	shutdownWait, restartWait      time.Duration
	nofile                         int

	// configFile is serve's --config (absolute; empty: none).
	configFile string
	// writable are the directories the server and its processes write,
	// the data directory first; readOnly are paths inside them that must
	// stay read-only (the configuration).
	writable, readOnly []string
	// named are the other paths the configuration names (files it reads,
	// commands it runs), which must stay visible.
	named []string
	// maxStop is the largest stop_timeout of a supervised process.
	maxStop time.Duration
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
	fs.StringVar(&c.configFile, "config", "", "serve's --config FILE, an absolute path; it is loaded and checked, and the directories it writes are opened to the server")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		return usagef("invalid --addr %q: %v", c.addr, err)
	}
	if c.shutdownWait <= 0 || c.restartWait <= 0 || c.nofile <= 0 {
		return usagef("--shutdown-timeout, --restart-sec and --nofile must be positive")
	}
	if c.configFile != "" && !filepath.IsAbs(c.configFile) {
		return usagef("--config %q: the unit needs an absolute path", c.configFile)
	}
	var err error
	if c.data, err = filepath.Abs(c.data); err != nil {
		return err
	}
	c.writable = []string{c.data}
	if c.configFile != "" {
		cfg, err := config.Load(c.configFile)
		if err != nil {
			return usageError{err}
		}
		c.addConfig(cfg)
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return fmt.Errorf("find the path of this binary: %w", err)
	}
	c.exe = exe
	for _, v := range slices.Concat([]string{c.data, c.addr, c.user, c.envFile}, c.paths()) {
		if strings.ContainsFunc(v, unicode.IsControl) {
			return usagef("%q: a unit file cannot hold control characters", v)
		}
	}
	_, err = io.WriteString(stdout, systemdUnit(c))
	return err
}

// systemdUnit renders the unit for c.
func systemdUnit(c unitConfig) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	// Supervised processes stop, requests drain, the agents' last
	// checkpoints are written (each step bounded by --shutdown-timeout),
	// the search index catches up (3 s at most) and the store closes.
	stopWait := c.maxStop + 2*c.shutdownWait + 20*time.Second
	owner := ""
	if c.user != "" && c.user != "root" {
		owner = fmt.Sprintf(" -o %s -g %s", c.user, c.user)
	}
	w("# nexus.service, written by `nexus systemd-unit`.")
	w("#   nexus systemd-unit > /etc/systemd/system/nexus.service")
	if owner != "" {
		w("#   useradd --system --home-dir %s --shell /usr/sbin/nologin %s", c.data, c.user)
	}
	for _, dir := range c.writable {
		if !c.createdBySystemd(dir) {
			w("#   install -d%s %s", owner, shellWord(dir))
		}
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
	if state, ok := stateDirectory(c.data); ok {
		w("# Created (owned by the service's user) before the server starts.")
		w("StateDirectory=%s", state)
	}
	if logs := c.logsDirectories(); len(logs) > 0 {
		w("# The supervised processes' log directories, created like the state directory.")
		w("LogsDirectory=%s", strings.Join(logs, " "))
	}
	if c.envFile != "" {
		w("# NEXUS_TOKEN and the API keys of agents (e.g. OPENAI_API_KEY) go in this file, mode 0600; '-': it may be absent.")
		w("EnvironmentFile=-%s", systemdQuote(c.envFile))
	}
	configFlag := ""
	if c.configFile != "" {
		configFlag = " --config " + execWord(c.configFile)
	}
	w("ExecStart=%s serve --data %s --addr %s --shutdown-timeout %s%s",
		execWord(c.exe), execWord(c.data), execWord(c.addr), c.shutdownWait, configFlag)
	w("Restart=on-failure")
	w("RestartSec=%s", systemdSeconds(c.restartWait))
	w("# Exit code %d: the node stopped itself because a critical component is damaged", fsckDamaged)
	w("# beyond what it can repair; a restart would only loop on the damage. systemd")
	w("# does not restart it: run `nexus recover --data %s`, then start it again.", c.data)
	w("# Exit code 2: the command line or the --config file is wrong (the message says")
	w("# where); a restart would fail the same way until it is fixed.")
	w("RestartPreventExitStatus=2 %d", fsckDamaged)
	w("# After SIGTERM serve stops its supervised processes (each within its")
	w("# stop_timeout), drains in-flight requests and then writes its agents' last")
	w("# checkpoints (each for up to --shutdown-timeout), lets the search index catch")
	w("# up (3s at most) and closes the store; systemd waits longer than all that.")
	w("TimeoutStopSec=%s", systemdSeconds(stopWait))
	w("# SIGTERM to the server alone: it stops the agent processes it supervises itself.")
	w("KillMode=mixed")
	w("LimitNOFILE=%d", c.nofile)
	w("")
	w("# Hardening. Supervised agent processes run under the same rules, which is why")
	w("# MemoryDenyWriteExecute (it breaks JIT runtimes such as Node.js) is not set.")
	w("NoNewPrivileges=yes")
	w("ProtectSystem=strict")
	w("# The data directory and the directories the --config file names (run_dir,")
	w("# log_dir, dir); the configuration itself stays read-only.")
	w("ReadWritePaths=%s", unitWords(c.writable))
	if len(c.readOnly) > 0 {
		w("ReadOnlyPaths=%s", unitWords(c.readOnly))
	}
	if home := slices.IndexFunc(c.paths(), inHome); home >= 0 {
		w("# Home directories read-only, not hidden: the service uses %s.", c.paths()[home])
		w("ProtectHome=read-only")
	} else {
		w("ProtectHome=yes")
	}
	if tmp := slices.IndexFunc(c.paths(), inTmp); tmp >= 0 {
		w("# No PrivateTmp: the service's own /tmp would hide %s, which it uses.", c.paths()[tmp])
	} else {
		w("PrivateTmp=yes")
	}
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

// addConfig takes from a loaded configuration what the unit must allow:
// the directories it writes, the files it reads and the longest stop.
func (c *unitConfig) addConfig(cfg *config.Config) {
	dirs := []string{cfg.Supervisor.RunDir}
	for _, p := range cfg.Supervisor.Processes {
		dirs = append(dirs, p.LogDir, p.Dir)
		c.named = append(c.named, p.Command)
		c.maxStop = max(c.maxStop, p.StopTimeout)
	}
	for _, a := range cfg.Agents {
		dirs = append(dirs, a.Dir)
		c.named = append(c.named, a.Command, a.SecretsFile)
	}
	c.writable = outermost(append(c.writable, dirs...))
	c.named = append(c.named, c.configFile)
	c.readOnly = readOnlyConfig(c.configFile, c.writable)
}

// outermost returns the absolute paths of paths, cleaned, each once, in
// their order, leaving out those inside another one.
func outermost(paths []string) []string {
	var abs []string
	for _, p := range paths {
		if filepath.IsAbs(p) {
			abs = append(abs, filepath.Clean(p))
		}
	}
	var out []string
	for i, p := range abs {
		inner := slices.ContainsFunc(abs, func(q string) bool { return q != p && within(p, q) }) ||
			slices.Index(abs, p) < i
		if !inner {
			out = append(out, p)
		}
	}
	return out
}

// readOnlyConfig returns what keeps the configuration file read-only when
// it lies in a writable directory: its directory, or the file alone when
// that directory is (or holds) a writable one. ProtectSystem=strict keeps
// it read-only everywhere else.
func readOnlyConfig(file string, writable []string) []string {
	if file == "" {
		return nil
	}
	dir := filepath.Dir(file)
	if !slices.ContainsFunc(writable, func(w string) bool { return within(dir, w) }) {
		return nil
	}
	if slices.ContainsFunc(writable, func(w string) bool { return within(w, dir) }) {
		return []string{file}
	}
	return []string{dir}
}

// within reports whether path is dir or lies inside it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// paths are every path the unit's service uses: the binary, the data
// directory, and those of the configuration.
func (c *unitConfig) paths() []string {
	return slices.Concat([]string{c.exe}, c.writable, c.readOnly, c.named)
}

// stateDirectory returns NAME when dir is /var/lib/NAME, which systemd
// creates for the service.
func stateDirectory(dir string) (string, bool) {
	name, ok := strings.CutPrefix(dir, "/var/lib/")
	return name, ok && name != "" && !strings.Contains(name, "/")
}

// logsDirectories are the writable directories /var/log/NAME, which
// systemd creates for the service.
func (c *unitConfig) logsDirectories() []string {
	var names []string
	for _, dir := range c.writable {
		if name, ok := strings.CutPrefix(dir, "/var/log/"); ok && name != "" && !strings.Contains(name, "/") {
			names = append(names, systemdQuote(name))
		}
	}
	return names
}

// createdBySystemd reports whether systemd creates the writable directory
// dir before the server starts (StateDirectory=, LogsDirectory=).
func (c *unitConfig) createdBySystemd(dir string) bool {
	if _, ok := stateDirectory(dir); ok {
		return dir == c.data
	}
	name, ok := strings.CutPrefix(dir, "/var/log/")
	return ok && name != "" && !strings.Contains(name, "/")
}

// inHome reports whether path lies in a directory ProtectHome=yes hides;
// the unit then makes them read-only instead (ReadWritePaths opens the
// writable ones).
func inHome(path string) bool {
	return within(path, "/home") || within(path, "/root") || within(path, "/run/user")
}

// inTmp reports whether path lies in a directory PrivateTmp replaces.
func inTmp(path string) bool {
	return within(path, "/tmp") || within(path, "/var/tmp")
}

// shellWord quotes s for a shell when it holds more than plain path
// characters.
func shellWord(s string) string {
	if !strings.ContainsFunc(s, notPlain) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func notPlain(r rune) bool {
	return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("/._-+,:=@", r)
}

// unitWords renders paths as the words of one unit file setting.
func unitWords(paths []string) string {
	words := make([]string, len(paths))
	for i, p := range paths {
		words[i] = systemdQuote(p)
	}
	return strings.Join(words, " ")
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
