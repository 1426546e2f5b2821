// SPDX-License-Identifier: BSD-3-Clause

package slurm

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shifter-go/shifter/internal/testutil"
)

// installedProlog is where `make install` puts contrib/slurm/prolog.sh and
// where the wrappers of docs/batch.md exec it.
const installedProlog = "/usr/local/share/shifter/slurm/prolog.sh"

// docScript returns the fenced block that follows `<!-- test: NAME -->` in
// docs/batch.md, so that the test runs exactly what the page documents.
func docScript(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "docs/batch.md"))
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- test: " + name + " -->\n```\n"
	_, rest, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("docs/batch.md has no %q followed by a fenced block", strings.TrimSpace(marker))
	}
	script, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatalf("docs/batch.md: the block after the %s marker is not closed", name)
	}
	return script
}

// torqueFold prints one attribute as Torque's `qstat -f` does (prt_attr,
// linesize 77; PBS Pro's qstat behaves alike): items of the comma-separated
// value stay whole when they fit, a line breaks after a comma with a newline
// and a tab, and an item too long for the line is cut wherever it reaches
// the end of the line.
func torqueFold(name, value string) string {
	const linesize = 77
	var b strings.Builder
	b.WriteString("    " + name + " = ")
	col := len(name) + 7
	var items []string
	for _, it := range strings.Split(value, ",") {
		if it != "" { // strtok skips empty items
			items = append(items, it)
		}
	}
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		if len(it)+col < linesize {
			b.WriteString(it)
			col += len(it)
			continue
		}
		if i > 0 {
			b.WriteString("\n\t")
			col = 9
		}
		for j := 0; j < len(it); j++ {
			b.WriteByte(it[j])
			if col++; col > linesize {
				b.WriteString("\n\t")
				col = 8
			}
		}
	}
	return b.String() + "\n"
}

// qstatF is the `qstat -f JOBID` of a running Torque job submitted with
// `qsub -v VARS`.
func qstatF(jobID, vars string) string {
	return "Job Id: " + jobID + "\n" +
		"    Job_Name = job.pbs\n" +
		"    Job_Owner = alice@login1.example.com\n" +
		"    job_state = R\n" +
		"    queue = batch\n" +
		"    server = torque.example.com\n" +
		"    Checkpoint = u\n" +
		"    ctime = Mon Dec  7 20:41:07 2026\n" +
		"    exec_host = n1/0-15+n2/0-15\n" +
		"    Hold_Types = n\n" +
		"    Join_Path = n\n" +
		"    Keep_Files = n\n" +
		"    Mail_Points = a\n" +
		"    mtime = Mon Dec  7 20:41:09 2026\n" +
		"    Output_Path = login1.example.com:/home/alice/run1/job.pbs.o" + strings.SplitN(jobID, ".", 2)[0] + "\n" +
		"    Priority = 0\n" +
		"    qtime = Mon Dec  7 20:41:07 2026\n" +
		"    Rerunable = True\n" +
		"    Resource_List.nodes = 2:ppn=16\n" +
		"    Resource_List.walltime = 01:00:00\n" +
		"    session_id = 48213\n" +
		torqueFold("Variable_List", vars) +
		"    euser = alice\n" +
		"    egroup = users\n" +
		"    queue_type = E\n" +
		"    etime = Mon Dec  7 20:41:07 2026\n" +
		"    submit_args = -l nodes=2:ppn=16 job.pbs\n" +
		"    start_time = Mon Dec  7 20:41:09 2026\n" +
		"    start_count = 1\n" +
		"    fault_tolerant = False\n" +
		"    job_radix = 0\n" +
		"    submit_host = login1.example.com\n" +
		"    init_work_dir = /home/alice/run1\n" +
		"\n"
}

// fluxJobspec is what `flux job info ID jobspec` prints for a job of
// `flux batch -N 2 --env=...`: compact JSON, the submitter's environment
// in attributes.system.environment.
func fluxJobspec(t *testing.T, env map[string]string) string {
	t.Helper()
	spec := map[string]any{
		"resources": []any{map[string]any{
			"type": "node", "count": 2, "exclusive": true,
			"with": []any{map[string]any{
				"type": "slot", "count": 1, "label": "task",
				"with": []any{map[string]any{"type": "core", "count": 1}},
			}},
		}},
		"tasks": []any{map[string]any{
			"command": []string{"flux", "broker", "{{tmpdir}}/script"},
			"slot":    "task",
			"count":   map[string]any{"per_slot": 1},
		}},
		"attributes": map[string]any{"system": map[string]any{
			"duration":    0,
			"cwd":         "/home/alice/run1",
			"environment": env,
			"shell":       map[string]any{"options": map[string]any{"rlimit": map[string]any{"stack": 8388608, "core": 0, "nofile": 1024}}},
			"batch":       map[string]any{"script": "#!/bin/sh\nflux run -N 2 -n 64 shifter ./a.out\n"},
		}},
		"version": 1,
	}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// TestBatchWrappers runs the LSF HOST_PRE_EXEC wrapper, the PBS/Torque
// prologue and the Flux job-manager prolog of docs/batch.md, taken from the
// page, with /bin/sh, the arguments and environment their batch system
// gives them, and stub qstat and flux programs printing what the real ones
// print. prolog.sh is replaced by a stub that records its arguments and the
// variables it is given; the test checks that it gets exactly the job's
// pinned image (type, id, request) and the job's user. No root needed.
func TestBatchWrappers(t *testing.T) {
	testutil.RequireTool(t, "jq")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testutil.Unavailable(t, "no user nobody: "+err.Error())
	}
	const (
		id     = "3f1c7a0e9b2d4c6a8e0f1b3d5c7a9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c"
		pbsJob = "4242.torque.example.com"
		fluxID = "ƒ2x3YzAbQ"
	)
	pbsVars := func(shifter string) string {
		return "PBS_O_QUEUE=batch,PBS_O_HOME=/home/alice,PBS_O_LOGNAME=alice," +
			"PBS_O_PATH=/home/alice/bin:/usr/local/bin:/usr/bin:/bin,PBS_O_MAIL=/var/mail/alice," +
			"PBS_O_SHELL=/bin/bash,PBS_O_LANG=en_US.UTF-8," + shifter +
			",PBS_O_WORKDIR=/home/alice/run1,PBS_O_HOST=login1.example.com,PBS_O_SERVER=torque.example.com"
	}
	fluxEnv := func(extra map[string]string) map[string]string {
		env := map[string]string{
			"HOME": "/home/alice", "USER": "alice", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
			"SHELL": "/bin/bash", "PWD": "/home/alice/run1",
			"SHIFTER_IMAGE_NOTE": "not one of ours", // a prefix match would take it
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	tests := []struct {
		name   string
		script string   // marker in docs/batch.md
		args   []string // the wrapper's arguments
		env    []string // the batch daemon's environment for the wrapper
		qstat  string   // qstat -f output for pbsJob
		flux   string   // flux job info fluxID jobspec output
		want   []string // the stub prolog's record: arg=... then sorted variables
		stderr string   // what the wrapper prints (nothing when empty)
	}{{
		name:   "lsf host pre-exec",
		script: "lsf-host-pre-exec",
		env:    []string{"LSB_SUB_USER=nobody", "LSB_JOBID=1234", "SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04"},
		want:   []string{"SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04", "SLURM_JOB_UID=" + nobody.Uid},
	}, {
		name:   "lsf host pre-exec, pinned by the user",
		script: "lsf-host-pre-exec",
		env: []string{"LSB_SUB_USER=nobody", "LSB_JOBID=1235", "SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04",
			"SHIFTER_IMAGETYPE=id", "SHIFTER_IMAGE=" + id},
		want: []string{"SHIFTER_IMAGE=" + id, "SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04",
			"SHIFTER_IMAGETYPE=id", "SLURM_JOB_UID=" + nobody.Uid},
	}, {
		name:   "lsf host pre-exec, unknown user",
		script: "lsf-host-pre-exec",
		env:    []string{"LSB_SUB_USER=no-such-user-here", "LSB_JOBID=1236", "SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04"},
		// id fails: prolog.sh gets an empty uid and then warms nothing.
		want:   []string{"SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04", "SLURM_JOB_UID="},
		stderr: "no such user",
	}, {
		name:   "pbs prologue, pinned with qsub -v",
		script: "pbs-prologue",
		args:   []string{pbsJob, "alice", "users"},
		env:    []string{"PBS_JOBID=" + pbsJob},
		qstat: qstatF(pbsJob, pbsVars("SHIFTER_IMAGETYPE=id,SHIFTER_IMAGE="+id+
			",SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04")),
		want: []string{"arg=" + pbsJob, "arg=alice", "arg=users",
			"SHIFTER_IMAGE=" + id, "SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04", "SHIFTER_IMAGETYPE=id"},
	}, {
		name:   "pbs prologue, variables first and last",
		script: "pbs-prologue",
		args:   []string{pbsJob, "alice", "users", "extra"},
		qstat: qstatF(pbsJob, "SHIFTER_IMAGE="+id+",SHIFTER_IMAGETYPE=id,"+
			pbsVars("XSHIFTER_IMAGE=x")+",SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04"),
		want: []string{"arg=" + pbsJob, "arg=alice", "arg=users", "arg=extra",
			"SHIFTER_IMAGE=" + id, "SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04", "SHIFTER_IMAGETYPE=id"},
	}, {
		// qsub -V puts the submitter's environment in Variable_List,
		// values with spaces included (SSH_CONNECTION always has some).
		name:   "pbs prologue, qsub -V with spaces in values",
		script: "pbs-prologue",
		args:   []string{pbsJob, "alice", "users"},
		qstat: qstatF(pbsJob, pbsVars("SSH_CONNECTION=10.1.2.3 50412 10.1.2.4 22,"+
			"PS1=\\u@\\h \\w\\$ ,SHIFTER_IMAGETYPE=id,SHIFTER_IMAGE="+id)),
		want: []string{"arg=" + pbsJob, "arg=alice", "arg=users", "SHIFTER_IMAGE=" + id, "SHIFTER_IMAGETYPE=id"},
	}, {
		name:   "pbs prologue, no shifter variables",
		script: "pbs-prologue",
		args:   []string{pbsJob, "alice", "users"},
		qstat:  qstatF(pbsJob, pbsVars("OMP_NUM_THREADS=4")),
		want:   []string{"arg=" + pbsJob, "arg=alice", "arg=users"},
	}, {
		name:   "flux prolog",
		script: "flux-prolog",
		env:    []string{"FLUX_JOB_ID=" + fluxID, "FLUX_JOB_USERID=1000"},
		flux: fluxJobspec(t, fluxEnv(map[string]string{"SHIFTER_IMAGETYPE": "id", "SHIFTER_IMAGE": id,
			"SHIFTER_IMAGEREQUEST": "docker:ubuntu:22.04"})),
		want: []string{"FLUX_JOB_USERID=1000", "SHIFTER_IMAGE=" + id,
			"SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04", "SHIFTER_IMAGETYPE=id"},
	}, {
		name:   "flux prolog, request only",
		script: "flux-prolog",
		env:    []string{"FLUX_JOB_ID=" + fluxID, "FLUX_JOB_USERID=1000"},
		flux:   fluxJobspec(t, fluxEnv(map[string]string{"SHIFTER_IMAGEREQUEST": "docker:ubuntu:22.04"})),
		want:   []string{"FLUX_JOB_USERID=1000", "SHIFTER_IMAGEREQUEST=docker:ubuntu:22.04"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			record := filepath.Join(dir, "prolog.record")
			stub := filepath.Join(dir, "prolog.sh")
			write(t, stub, "#!/bin/sh\n{\n"+
				"for a; do printf 'arg=%s\\n' \"$a\"; done\n"+
				"env | grep -E '^(SHIFTER_[A-Z_]*|SLURM_JOB_UID|FLUX_JOB_USERID)=' | LC_ALL=C sort\n"+
				"} >"+record+"\n", 0o755)
			// The stubs answer only the command line the wrapper must use.
			write(t, filepath.Join(dir, "qstat.out"), tc.qstat, 0o644)
			write(t, filepath.Join(bin, "qstat"), "#!/bin/sh\n"+
				"[ \"$#\" -eq 2 ] && [ \"$1\" = -f ] && [ \"$2\" = '"+pbsJob+"' ] || "+
				"{ echo \"qstat: Unknown Job Id $*\" >&2; exit 153; }\n"+
				"cat "+filepath.Join(dir, "qstat.out")+"\n", 0o755)
			write(t, filepath.Join(dir, "jobspec.out"), tc.flux, 0o644)
			write(t, filepath.Join(bin, "flux"), "#!/bin/sh\n"+
				"[ \"$*\" = 'job info "+fluxID+" jobspec' ] || "+
				"{ echo \"flux-job: $*: unexpected\" >&2; exit 1; }\n"+
				"cat "+filepath.Join(dir, "jobspec.out")+"\n", 0o755)

			script := docScript(t, tc.script)
			if n := strings.Count(script, installedProlog); n != 1 {
				t.Fatalf("the %s block names %s %d times, want once:\n%s", tc.script, installedProlog, n, script)
			}
			wrapper := filepath.Join(dir, tc.script)
			write(t, wrapper, strings.ReplaceAll(script, installedProlog, stub), 0o755)

			cmd := exec.Command("/bin/sh", append([]string{wrapper}, tc.args...)...)
			cmd.Env = append([]string{"PATH=" + bin + ":/usr/bin:/bin"}, tc.env...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tc.script, err, out)
			}
			if tc.stderr == "" && len(out) > 0 || !strings.Contains(string(out), tc.stderr) {
				t.Errorf("%s printed %q, want %q", tc.script, out, tc.stderr)
			}
			if tc.qstat != "" && strings.Contains(tc.qstat, id) {
				t.Fatalf("qstat stand-in did not fold the image id:\n%s", tc.qstat)
			}
			got, err := os.ReadFile(record)
			if err != nil {
				t.Fatalf("prolog.sh was not run: %v", err)
			}
			want := slices.Clone(tc.want)
			// Arguments first, in order; then the variables, sorted.
			slices.SortStableFunc(want, func(a, b string) int {
				aa, ba := strings.HasPrefix(a, "arg="), strings.HasPrefix(b, "arg=")
				switch {
				case aa && ba:
					return 0
				case aa:
					return -1
				case ba:
					return 1
				}
				return strings.Compare(a, b)
			})
			if g := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n"); !slices.Equal(g, want) && !(len(want) == 0 && string(got) == "") {
				t.Errorf("prolog.sh got\n  %s\nwant\n  %s", strings.Join(g, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}

// TestTorqueFold checks the qstat stand-in against Torque's prt_attr on a
// Variable_List whose 64-hex image id does not fit the line: Torque breaks
// after a comma when the next item does not fit, and inside an item that
// reaches column 77 (commas are not counted).
func TestTorqueFold(t *testing.T) {
	const id = "3f1c7a0e9b2d4c6a8e0f1b3d5c7a9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c"
	got := torqueFold("Variable_List", "PBS_O_QUEUE=batch,PBS_O_HOME=/home/alice,PBS_O_LOGNAME=alice,"+
		"SHIFTER_IMAGE="+id+",,X=1")
	want := "    Variable_List = PBS_O_QUEUE=batch,PBS_O_HOME=/home/alice,\n" +
		"\tPBS_O_LOGNAME=alice,\n" +
		"\tSHIFTER_IMAGE=" + id[:55] + "\n" +
		"\t" + id[55:] + ",X=1\n"
	if got != want {
		t.Errorf("torqueFold:\n%q\nwant\n%q", got, want)
	}
}
