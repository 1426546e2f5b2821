// SPDX-License-Identifier: BSD-3-Clause

//go:build cgo

package main

// Two things must happen before the Go runtime starts, because the
// runtime acts on them in its own start-up, before any Go code runs:
//
//   - The environment of a setuid shifter is the caller's, and the Go
//     runtime and standard library read variables from it (GODEBUG,
//     GOGC, GOMAXPROCS, GOMEMLIMIT, GOTRACEBACK, TZ, ZONEINFO, ...): the
//     caller could tune the garbage collector, the scheduler, tracing
//     and dozens of GODEBUG switches of a root process, or have it read
//     a file of their choosing as a time zone. The constructor takes
//     every such variable (scrubbed) out of the environment the runtime
//     reads, in place, when the kernel says the execution is secure
//     (AT_SECURE: setuid or setgid), and keeps a copy of the caller's
//     whole environment for the launcher, which builds the command's
//     environment from it, so the command still gets them.
//
//   - The Go runtime reserves about 0.8 GB of address space when it
//     starts (the page allocator's summaries, the scavenger's index, the
//     first heap arena) and more as threads start, so under
//     `ulimit -v` below that it dies before main with "failed to reserve
//     page summary memory". The constructor raises RLIMIT_AS for the
//     runtime's own processes (the launcher, the namespace init, the
//     FUSE helper): to unlimited when it may (setuid or root), else the
//     soft limit up to the hard one; when even that leaves less than the
//     runtime needs it says so, naming the limit, and exits 69 before
//     the runtime starts. It records the caller's limit, and the
//     launcher makes the command start under it again (see
//     launcher.Early).

//   - A privileged shifter (setuid or run by root) forks its namespace
//     init here, before the runtime starts, so that the init's Go
//     runtime starts alongside the launcher's instead of after it (a
//     re-exec would put the two start-ups one after the other: 3-5 ms
//     each on our VMs). The child enters a new mount namespace, takes
//     real uid and gid 0 (what tells the init that the runtime started
//     it), drops its environment and becomes "shifter-mountns-preinit:N"
//     (argv[0]), N being its end of a socket pair; its Go side
//     (mountns) waits there for the descriptors Run hands the init and
//     goes on as the init, or exits when the socket closes unused (no
//     container to run, or unprivileged mode). Run falls back to the
//     re-exec when the child is not there.

/*
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

// Set by the constructor, read once by the Go side.
char **shifter_early_env;             // the caller's environment, when variables were scrubbed
int shifter_early_scrubbed;           // how many variables were taken out
int shifter_early_as_raised;          // 1 when RLIMIT_AS was raised
unsigned long long shifter_early_as_cur, shifter_early_as_max; // the caller's RLIMIT_AS

// SHIFTER_AS_NEED is the address space the runtime is given at least
// (bytes): a soft limit below it is raised. The runtime needs about
// 0.8 GB to start, and a container start about 1.8 GB on a 2-core node
// (each thread's stack is another 8 MB of address space, and the Go
// runtime starts more threads on more cores): the margin is for large
// nodes.
#ifndef SHIFTER_AS_NEED
#define SHIFTER_AS_NEED (8ULL << 30)
#endif
// SHIFTER_AS_MIN is the least the runtime is started with (bytes): a
// hard limit below it that cannot be raised is refused. (Both can be
// changed with CGO_CFLAGS=-DSHIFTER_AS_MIN=..., for experiments.)
#ifndef SHIFTER_AS_MIN
#define SHIFTER_AS_MIN (2ULL << 30)
#endif

// early_scrubbed reports whether the variable kv (NAME=VALUE) is one the
// Go runtime or standard library reads: every GO* name, TZ and ZONEINFO.
static int early_scrubbed(const char *kv) {
	if (strncmp(kv, "GO", 2) == 0) return 1;
	if (strncmp(kv, "TZ=", 3) == 0 || strncmp(kv, "ZONEINFO=", 9) == 0) return 1;
	return 0;
}

// early_compact removes the scrubbed variables from the NULL-terminated
// array env, in place, and returns how many it removed.
static int early_compact(char **env) {
	int n = 0;
	char **w = env;
	for (char **r = env; *r != NULL; r++) {
		if (early_scrubbed(*r)) { n++; continue; }
		*w++ = *r;
	}
	*w = NULL;
	return n;
}

static void early_env(int argc, char **argv) {
	if (getauxval(AT_SECURE) == 0 || argv == NULL) return;
	// The Go runtime reads the environment from the array after argv;
	// libc's environ is that same array unless something called setenv.
	char **env = argv + argc + 1;
	size_t n = 0;
	while (env[n] != NULL) n++;
	char **copy = malloc((n + 1) * sizeof *copy);
	if (copy == NULL) {
		fputs("shifter: out of memory\n", stderr);
		_exit(70);
	}
	memcpy(copy, env, (n + 1) * sizeof *copy); // the strings stay where they are
	shifter_early_scrubbed = early_compact(env);
	extern char **environ;
	if (environ != env && environ != NULL) early_compact(environ);
	shifter_early_env = copy;
}

static void early_limit(void) {
	struct rlimit rl;
	if (getrlimit(RLIMIT_AS, &rl) != 0) return;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= SHIFTER_AS_NEED) return;
	struct rlimit up = { RLIM_INFINITY, RLIM_INFINITY };
	if (setrlimit(RLIMIT_AS, &up) != 0) {
		// No CAP_SYS_RESOURCE: the soft limit can go up to the hard one.
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < SHIFTER_AS_MIN) {
			fprintf(stderr, "shifter: the address-space limit (ulimit -v %llu, in KiB) is below the %llu KiB "
				"the runtime needs, and shifter cannot raise it (that takes CAP_SYS_RESOURCE, as a setuid-root "
				"shifter has): raise the hard limit (ulimit -H -v) to at least %llu\n",
				(unsigned long long)rl.rlim_max / 1024, SHIFTER_AS_MIN / 1024, SHIFTER_AS_MIN / 1024);
			_exit(69); // launcher.ExitUnavailable
		}
		up.rlim_cur = rl.rlim_max;
		up.rlim_max = rl.rlim_max;
		if (setrlimit(RLIMIT_AS, &up) != 0) return;
	}
	shifter_early_as_raised = 1;
	shifter_early_as_cur = rl.rlim_cur;
	shifter_early_as_max = rl.rlim_max;
}

// The pre-forked init: its pid and the launcher's end of the socket
// pair (-1 when there is none).
int shifter_prefork_pid = -1;
int shifter_prefork_fd = -1;

// The init's argv[0] prefix (mountns.preinitArg0).
#define PREINIT_ARG0 "shifter-mountns-preinit:"
static char early_preinit_arg0[64];

// CGO_CFLAGS=-DSHIFTER_NO_PREFORK builds a shifter that always re-executes
// (for A/B comparisons of the two ways).
static void early_prefork(int argc, char **argv) {
#ifdef SHIFTER_NO_PREFORK
	return;
#endif
	if (argc < 1 || argv == NULL || argv[0] == NULL) return;
	if (strncmp(argv[0], "shifter-mountns-", 16) == 0) return; // an init already
	size_t n = strlen(argv[0]);
	if (n >= 5 && strcmp(argv[0] + n - 5, ".test") == 0) return; // go test's binary
	if (geteuid() != 0) return; // unprivileged mode: Run re-executes
	// With stdin, stdout or stderr closed the socket would take its
	// number (the Go side opens /dev/null there later): rare, re-exec.
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0) return;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return;
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid > 0) {
		close(sv[1]);
		shifter_prefork_pid = pid;
		shifter_prefork_fd = sv[0];
		return;
	}
	close(sv[0]);
	// A child that cannot become the init exits: Run, finding the socket
	// closed, starts the init the re-exec way.
	if (unshare(CLONE_NEWNS) != 0) _exit(0);
	if (setgroups(0, NULL) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) _exit(0);
	// After the credential change, which would reset it. SIGCONT: the
	// init's lifeline pipe does the work; the signal wakes an init that
	// a job-control stop holds.
	prctl(PR_SET_PDEATHSIG, SIGCONT);
	if (getppid() == 1) _exit(0);
	snprintf(early_preinit_arg0, sizeof early_preinit_arg0, PREINIT_ARG0 "%d", sv[1]);
	argv[0] = early_preinit_arg0;
	// No environment: the init's Go runtime reads nothing of the
	// caller's, and what the init starts gets an explicit one. The array
	// keeps its length (the auxiliary vector the runtime reads follows
	// its terminating NULL); every entry becomes an empty string, which
	// names no variable.
	static char empty[1];
	for (char **e = argv + argc + 1; *e != NULL; e++) *e = empty;
	extern char **environ;
	if (environ != NULL && environ != argv + argc + 1)
		for (char **e = environ; *e != NULL; e++) *e = empty;
}

__attribute__((constructor)) static void shifter_early(int argc, char **argv, char **envp) {
	(void)envp;
	early_env(argc, argv);
	early_limit();
	early_prefork(argc, argv);
}

static char *early_env_at(int i) { return shifter_early_env[i]; }
*/
import "C"

import (
	"os"

	"github.com/shifter-go/shifter/launcher"
	"github.com/shifter-go/shifter/mountns"
)

// earlyState returns what the constructor did.
func earlyState() launcher.Early {
	var e launcher.Early
	if C.shifter_early_env != nil {
		e.CallerEnv = []string{}
		for i := 0; ; i++ {
			p := C.early_env_at(C.int(i))
			if p == nil {
				break
			}
			e.CallerEnv = append(e.CallerEnv, C.GoString(p))
		}
		e.Scrubbed = int(C.shifter_early_scrubbed)
	}
	if C.shifter_early_as_raised != 0 {
		e.AddressSpace = &launcher.Limit{Cur: uint64(C.shifter_early_as_cur), Max: uint64(C.shifter_early_as_max)}
	}
	if C.shifter_prefork_pid > 0 {
		e.Prefork = &mountns.Prefork{PID: int(C.shifter_prefork_pid), Sock: os.NewFile(uintptr(C.shifter_prefork_fd), "namespace init socket")}
	}
	return e
}
