package config

import (
	"slices"
	"strings"
	"time"
)

// The scenarios of `nexus drill` (docs/CHAOS.md, "Drills"): the names the
// objectives section of the file takes.
const (
	ObjectiveIndexRebuild      = "index_rebuild"       // index directory destroyed, node restarted → complete index
	ObjectiveIndexFilesDeleted = "index_files_deleted" // saved index files deleted under a running node → recovered
	ObjectiveObjectRepair      = "object_repair"       // a bit flipped in a pack under a running node → repaired
	ObjectivePackTruncated     = "pack_truncated"      // a pack cut short, node restarted → ready, all readable
	ObjectiveProcessRestart    = "process_restart"     // a supervised process SIGKILLed → running again
	ObjectiveAgentFailover     = "agent_failover"      // an agent's provider fails → answered by the pool's backup
	ObjectiveLeaderFailover    = "leader_failover"     // a 3-node cluster's leader killed → first acknowledged write
	ObjectiveRestoreFromBackup = "restore_from_backup" // a bundle restored into a new directory → serving
	ObjectiveDiskFullResume    = "disk_full_resume"    // disk full, writes refused, space freed → first acknowledged write
)

// ObjectiveNames are the scenarios of `nexus drill`, in the order it runs
// them.
var ObjectiveNames = []string{
	ObjectiveIndexRebuild, ObjectiveIndexFilesDeleted, ObjectiveObjectRepair, ObjectivePackTruncated,
	ObjectiveProcessRestart, ObjectiveAgentFailover, ObjectiveLeaderFailover, ObjectiveRestoreFromBackup,
	ObjectiveDiskFullResume,
}

// Objectives are the recovery time objectives `nexus drill` holds the
// node to: the longest each scenario may take, from the fault to the
// event that ends it. The file's section overrides the defaults name by
// name.
type Objectives map[string]time.Duration

// DefaultObjectives are the objectives of a file that leaves them out:
// what a shared 2-core machine (load average 9–11) met with a margin of
// at least 2× on a store of 20,000 contexts with `nexus serve`'s default
// --recover-interval of 10s (docs/BENCHMARKS.md, "Recovery time
// objective").
func DefaultObjectives() Objectives {
	return Objectives{
		ObjectiveIndexRebuild:      2 * time.Minute,
		ObjectiveIndexFilesDeleted: 30 * time.Second,
		ObjectiveObjectRepair:      2 * time.Minute,
		ObjectivePackTruncated:     60 * time.Second,
		ObjectiveProcessRestart:    5 * time.Second,
		ObjectiveAgentFailover:     10 * time.Second,
		ObjectiveLeaderFailover:    5 * time.Second,
		ObjectiveRestoreFromBackup: 60 * time.Second,
		ObjectiveDiskFullResume:    5 * time.Second,
	}
}

func (d *decoder) validateObjectives(o Objectives) {
	names := make([]string, 0, len(o))
	for name := range o {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := "objectives." + name
		switch {
		case !slices.Contains(ObjectiveNames, name):
			d.errorf(p, "unknown scenario (known: %s)", strings.Join(sortedObjectives(), ", "))
		case o[name] <= 0:
			d.errorf(p, "must be positive, not %v", o[name])
		}
	}
}

func sortedObjectives() []string {
	s := slices.Clone(ObjectiveNames)
	slices.Sort(s)
	return s
}
