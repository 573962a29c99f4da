// Package supervisor runs local agent commands as child processes and
// keeps them running: it restarts them under a policy with exponential
// backoff, gives up on one that keeps failing, writes pid files, sends
// their output to rotated log files, stops them gracefully and reports
// the state of each.
//
// # Basics
//
// [New] makes a [Supervisor] over a run directory (pid files go there);
// [Supervisor.Start] launches one [Spec] and watches it from its own
// goroutine; [Supervisor.Status] reports every process (for /health,
// /metrics and `nexus agents`); [Supervisor.Stop] and [Supervisor.Close]
// stop them (SIGTERM to the process group, SIGKILL after the stop
// timeout) and own every goroutine the supervisor started.
//
// Each process is started in its own process group, so a stop or a kill
// reaches the children it spawned too. Its standard output and error go
// together to LOGDIR/NAME.log, rotated to NAME.log.1 ... NAME.log.KEEP when
// it would grow past the maximum size; its standard input is /dev/null.
//
// The restart policy ([Policy]) restarts a process that exits with a
// non-zero status or is killed by a signal (SIGKILL included), and, with
// [RestartAlways], one that exits cleanly. Before restart number n inside
// the sliding window, it waits InitialBackoff·2^(n-1), capped at
// MaxBackoff. When a process ends with MaxRestarts restarts already inside
// the window, it is given up: its state becomes [StateFailed] with the
// reason, and it stays so until it is started again.
//
// # Caveats
//
// When the main process of a group exits, whatever is left of its group
// is killed with SIGKILL before a restart: a restarted process never
// finds the helpers of the previous one still holding its ports or files.
// A descendant that leaves the group (setsid) is out of reach.
//
// A process gets a minimal environment: PATH, HOME, LANG, LC_* and TZ of
// the supervisor's, the variables its Spec lists and the marker below;
// nothing else of the supervisor's environment (a token, provider keys)
// reaches it.
//
// A pid file (RUNDIR/NAME.pid, the pid alone on one line) exists while the
// process runs; it is written atomically and removed when the process
// ends. A pid file found at start belongs to a supervisor that crashed.
// The process it names is checked through /proc: it is ours only if its
// environment carries NEXUS_SUPERVISOR_PIDFILE set to that pid file's
// path, which every supervised process inherits, so a pid reused by an
// unrelated process is never touched. Such an orphan is not adopted (a
// process can only be waited on by its parent, so its exit could not be
// seen): its group is stopped like any other (SIGTERM, then SIGKILL) and a
// fresh process is started in its place.
//
// Backoff waits read the injected [Clock]; the stop grace period is real
// time, since it bounds how long real processes get to exit.
package supervisor
