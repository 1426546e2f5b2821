/* SPDX-License-Identifier: BSD-3-Clause
 *
 * shifter_spank.so: Slurm SPANK plugin for shifter-go (docs/batch.md).
 *
 *   sbatch/salloc/srun --image=[docker:|id:]TAG --volume=V --module=M
 *
 * At submission (local and allocator contexts) the image is resolved to an
 * image id by running the installed `shifterimg lookup` (an absolute path
 * from plugstack.conf or the build-time default, run with execv and a fixed
 * environment, under a timeout) as the submitting user, so the gateway
 * checks that the image exists, is READY and is allowed to that user. The
 * id is pinned into the job: SHIFTER_IMAGETYPE=id, SHIFTER_IMAGE=<id>,
 * SHIFTER_IMAGEREQUEST, SHIFTER_VOLUME, SHIFTER_MODULE are set in the
 * submitting process's environment (which Slurm exports to the job) and
 * in the job control environment (SPANK_SHIFTER_* in the prolog and epilog,
 * SLURM_SPANK_SHIFTER_* in the job, which shifter also reads).
 *
 * In the job prolog (slurmd, root, every node of the job) it runs
 * `shifterd warm --trace-only id:<id>` (a full warm when that fails, e.g.
 * for an image without a start-up trace yet) as the job's user when
 * shifterd's socket exists, under a timeout; a failure there is logged and
 * never fails the job.
 *
 * plugstack.conf arguments (all optional):
 *   shifter_config=PATH   udiRoot.conf given to shifterimg and shifterd
 *   shifterimg=PATH       absolute path of shifterimg
 *   shifterd=PATH         absolute path of shifterd
 *   shifterd_socket=PATH  shifterd's socket (warm only when it exists)
 *   lookup_timeout=SEC    lookup time limit (default 30)
 *   warm_timeout=SEC      prolog warm time limit (default 120)
 *   warm=trace|full|off   what the prolog warms (default trace)
 * NERSC Shifter's extern_setup, extern_cgroup, memory_cgroup, enable_ccm,
 * enable_sshd and long_options are accepted and ignored.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/spank.h>

SPANK_PLUGIN(shifter, 1);

#ifndef SHIFTER_PREFIX
#define SHIFTER_PREFIX "/usr/local"
#endif

#define MAX_IMAGE 256
#define MAX_VOLUME 4096
#define MAX_MODULE 256
#define MAX_PATH 1024
#define ID_LEN 64
#define OUT_MAX 8192

static char image_req[MAX_IMAGE + 1];
static char volume[MAX_VOLUME + 1];
static char module[MAX_MODULE + 1];
static int have_image, have_volume, have_module;

static char cfg_path[MAX_PATH + 1];
static char shifterimg_path[MAX_PATH + 1] = SHIFTER_PREFIX "/bin/shifterimg";
static char shifterd_path[MAX_PATH + 1] = SHIFTER_PREFIX "/bin/shifterd";
static char socket_path[MAX_PATH + 1] = "/run/shifter/shifterd.sock";
static int lookup_timeout = 30;
static int warm_timeout = 120;
static enum { WARM_TRACE, WARM_FULL, WARM_OFF } warm_mode = WARM_TRACE;

/* allowed reports whether every byte of s is in set (or alphanumeric). */
static int allowed(const char *s, const char *set)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || (c && strchr(set, c))))
			return 0;
	}
	return 1;
}

static int is_hex_id(const char *s)
{
	size_t n = strlen(s);
	if (n != ID_LEN)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* copy_checked copies val into dst (size max+1) when it is 1..max bytes of
 * allowed characters; else it reports what is wrong and returns -1. */
static int copy_checked(const char *what, const char *val, char *dst,
			size_t max, const char *set)
{
	size_t n;
	if (val == NULL || (n = strlen(val)) == 0) {
		slurm_error("shifter: --%s needs a value", what);
		return -1;
	}
	if (n > max) {
		slurm_error("shifter: --%s is longer than %zu bytes", what, max);
		return -1;
	}
	if (!allowed(val, set)) {
		slurm_error("shifter: --%s=%s: only letters, digits and \"%s\" are allowed",
			    what, val, set);
		return -1;
	}
	memcpy(dst, val, n + 1);
	return 0;
}

static int opt_image(int val, const char *optarg, int remote)
{
	(void)val;
	(void)remote;
	if (copy_checked("image", optarg, image_req, MAX_IMAGE, "._:/@-+") < 0)
		return -1;
	have_image = 1;
	return 0;
}

static int opt_volume(int val, const char *optarg, int remote)
{
	(void)val;
	(void)remote;
	if (copy_checked("volume", optarg, volume, MAX_VOLUME, "._:/;=,+@%-") < 0)
		return -1;
	have_volume = 1;
	return 0;
}

static int opt_module(int val, const char *optarg, int remote)
{
	(void)val;
	(void)remote;
	if (copy_checked("module", optarg, module, MAX_MODULE, "_,.-") < 0)
		return -1;
	have_module = 1;
	return 0;
}

/* Registered with spank_option_register in every context (the only way
 * in the allocator context); not named spank_options, which Slurm would
 * also register by itself in the local and remote contexts. */
static struct spank_option options[] = {
	{"image", "[docker:|id:]TAG", "shifter image for the job (pinned to its id at submission)",
	 1, 0, opt_image},
	{"volume", "SRC:DST[:ro][;...]", "shifter volumes for the job", 1, 0, opt_volume},
	{"module", "A,B", "shifter modules for the job (none for none)", 1, 0, opt_module},
	SPANK_OPTIONS_TABLE_END};

static int parse_int(const char *arg, const char *v, int *out)
{
	char *end;
	long n;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *v == '\0' || *end != '\0' || n < 1 || n > 86400) {
		slurm_error("shifter: plugstack.conf: %s: a number of seconds (1..86400) is needed", arg);
		return -1;
	}
	*out = (int)n;
	return 0;
}

static int parse_path(const char *arg, const char *v, char *dst)
{
	if (v[0] != '/' || strlen(v) > MAX_PATH || !allowed(v, "._/-+")) {
		slurm_error("shifter: plugstack.conf: %s: an absolute path of letters, digits and ._/-+ is needed", arg);
		return -1;
	}
	strcpy(dst, v);
	return 0;
}

static int parse_args(int ac, char **av)
{
	for (int i = 0; i < ac; i++) {
		const char *a = av[i], *eq = strchr(a, '=');
		const char *v = eq ? eq + 1 : "";
		size_t k = eq ? (size_t)(eq - a) : strlen(a);
#define KEY(s) (k == strlen(s) && strncmp(a, s, k) == 0)
		int rc;
		if (KEY("shifter_config"))
			rc = parse_path(a, v, cfg_path);
		else if (KEY("shifterimg"))
			rc = parse_path(a, v, shifterimg_path);
		else if (KEY("shifterd"))
			rc = parse_path(a, v, shifterd_path);
		else if (KEY("shifterd_socket"))
			rc = parse_path(a, v, socket_path);
		else if (KEY("lookup_timeout"))
			rc = parse_int(a, v, &lookup_timeout);
		else if (KEY("warm_timeout"))
			rc = parse_int(a, v, &warm_timeout);
		else if (KEY("warm")) {
			rc = 0;
			if (strcmp(v, "trace") == 0)
				warm_mode = WARM_TRACE;
			else if (strcmp(v, "full") == 0)
				warm_mode = WARM_FULL;
			else if (strcmp(v, "off") == 0)
				warm_mode = WARM_OFF;
			else {
				slurm_error("shifter: plugstack.conf: %s: trace, full or off", a);
				rc = -1;
			}
		} else if (KEY("extern_setup") || KEY("extern_cgroup") || KEY("memory_cgroup") ||
			   KEY("enable_ccm") || KEY("enable_sshd") || KEY("long_options")) {
			/* NERSC Shifter's arguments for features this runtime
			 * does not have: a plugstack.conf carried over keeps
			 * working (docs/batch.md). */
			slurm_debug("shifter: plugstack.conf: %s is Shifter's and is ignored", a);
			rc = 0;
		} else {
			slurm_error("shifter: plugstack.conf: unknown argument %s", a);
			rc = -1;
		}
#undef KEY
		if (rc < 0)
			return -1;
	}
	return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();
	if (parse_args(ac, av) < 0)
		return -1;
	if (ctx == S_CTX_ALLOCATOR || ctx == S_CTX_LOCAL || ctx == S_CTX_REMOTE) {
		for (struct spank_option *o = options; o->name; o++)
			if (spank_option_register(sp, o) != ESPANK_SUCCESS) {
				slurm_error("shifter: cannot register --%s", o->name);
				return -1;
			}
	}
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* run execs argv[0] (an absolute path) with a fixed environment, stdin from
 * /dev/null, collecting stdout and stderr (each up to OUT_MAX-1 bytes, NUL
 * terminated) for at most timeout seconds; then its process group is
 * killed. uid and gid, unless (uid_t)-1, are the child's identity (with
 * the user's groups). Returns the exit status, 128+signal, or -1 (could not run or
 * timed out; err says which). */
static int run(char *const argv[], int timeout, char *out, char *err, uid_t uid, gid_t gid)
{
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
	int po[2], pe[2], status;
	size_t no = 0, ne = 0;
	pid_t pid;
	double deadline = now() + timeout;

	out[0] = err[0] = '\0';
	/* The user's groups are looked up before fork: the child of a
	 * threaded process (slurmstepd) may only make system calls. */
	gid_t groups[256];
	int ngroups = 0;
	if (uid != (uid_t)-1) {
		char buf[4096];
		struct passwd pw, *ppw = NULL;
		if (getpwuid_r(uid, &pw, buf, sizeof buf, &ppw) != 0 || ppw == NULL) {
			snprintf(err, OUT_MAX, "uid %u is not a known user", (unsigned)uid);
			return -1;
		}
		ngroups = (int)(sizeof groups / sizeof groups[0]);
		if (getgrouplist(pw.pw_name, gid, groups, &ngroups) < 0) {
			snprintf(err, OUT_MAX, "user %s is in more than %zu groups", pw.pw_name,
				 sizeof groups / sizeof groups[0]);
			return -1;
		}
	}
	if (pipe2(po, O_CLOEXEC) < 0)
		goto fail;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
		goto fail;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		setpgid(0, 0);
		if (nul < 0 || dup2(nul, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
			_exit(126);
		/* The fds above 2 are close-on-exec or the caller's; close them. */
		for (int fd = 3; fd < 1024; fd++)
			if (fd != po[1] && fd != pe[1])
				close(fd);
		if (uid != (uid_t)-1 &&
		    (setgroups((size_t)ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
			dprintf(2, "cannot become uid %u: %s\n", (unsigned)uid, strerror(errno));
			_exit(126);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(argv[0], argv, envp);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(po[1]);
	close(pe[1]);
	struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
	int open_fds = 2, timed_out = 0;
	while (open_fds > 0) {
		int ms = (int)((deadline - now()) * 1000);
		if (ms <= 0) {
			timed_out = 1;
			break;
		}
		int r = poll(fds, 2, ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char buf[1024], *dst = i == 0 ? out : err;
			size_t *n = i == 0 ? &no : &ne;
			ssize_t k = read(fds[i].fd, buf, sizeof buf);
			if (k <= 0) {
				if (k < 0 && errno == EINTR)
					continue;
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
				continue;
			}
			size_t take = (size_t)k;
			if (take > OUT_MAX - 1 - *n)
				take = OUT_MAX - 1 - *n;
			memcpy(dst + *n, buf, take);
			*n += take;
			dst[*n] = '\0';
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	if (timed_out) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	/* After the pipes closed the child exits (or was killed): reap it,
	 * killing it when it outlives the deadline with its pipes closed. */
	for (;;) {
		pid_t w = waitpid(pid, &status, timed_out ? 0 : WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) { /* ECHILD: SIGCHLD ignored by the host process */
			snprintf(err, OUT_MAX, "cannot wait for %s: %s", argv[0], strerror(errno));
			return -1;
		}
		if (now() > deadline) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			continue;
		}
		usleep(10000);
	}
	if (timed_out) {
		snprintf(err, OUT_MAX, "timed out after %d s", timeout);
		return -1;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
fail:
	snprintf(err, OUT_MAX, "%s", strerror(errno));
	return -1;
}

/* last_line returns the last non-empty line of s, trimmed, in place. */
static char *last_line(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
	char *nl = strrchr(s, '\n');
	return nl ? nl + 1 : s;
}

/* one_line makes s printable on one line for a message. */
static char *one_line(char *s)
{
	char *l = last_line(s);
	(void)l;
	for (char *p = s; *p; p++)
		if (*p == '\n' || (unsigned char)*p < 0x20)
			*p = ' ';
	return s;
}

static int export(spank_t sp, const char *name, const char *val)
{
	if (setenv(name, val, 1) < 0) {
		slurm_error("shifter: setenv %s: %s", name, strerror(errno));
		return -1;
	}
	spank_err_t rc = spank_job_control_setenv(sp, name, val, 1);
	if (rc != ESPANK_SUCCESS) {
		slurm_error("shifter: cannot set %s in the job control environment: %s",
			    name, spank_strerror(rc));
		return -1;
	}
	return 0;
}

/* env returns SHIFTER_<name>, else SLURM_SPANK_SHIFTER_<name> (the job
 * control environment as the job sees it, e.g. under --export=NONE). */
static const char *env(const char *name)
{
	char full[64];
	snprintf(full, sizeof full, "SHIFTER_%s", name);
	const char *v = getenv(full);
	if (v == NULL) {
		snprintf(full, sizeof full, "SLURM_SPANK_SHIFTER_%s", name);
		v = getenv(full);
	}
	return v;
}

/* pinned_id returns the image id the job pinned for request, or NULL. */
static const char *pinned_id(const char *request)
{
	const char *t = env("IMAGETYPE"), *id = env("IMAGE"), *r = env("IMAGEREQUEST");
	if (t == NULL || id == NULL || r == NULL || strcmp(t, "id") != 0 || strcmp(r, request) != 0 ||
	    !is_hex_id(id))
		return NULL;
	return id;
}

static int pin_image(spank_t sp)
{
	static char out[OUT_MAX], err[OUT_MAX];
	char req[MAX_IMAGE + 16];
	const char *ref = image_req;

	/* The runtime's types: docker (a tag) and id; local: is refused
	 * here (it names a host directory, not an image to pin). */
	if (strncmp(image_req, "local:", 6) == 0) {
		slurm_error("shifter: --image=%s: local images cannot be used with --image in a job", image_req);
		return -1;
	}
	if (strncmp(image_req, "id:", 3) == 0) {
		const char *id = image_req + 3;
		if (strncmp(id, "sha256:", 7) == 0)
			id += 7;
		if (!is_hex_id(id)) {
			slurm_error("shifter: --image=%s: an id is 64 lowercase hex digits", image_req);
			return -1;
		}
	}
	if (ref[0] == '-' || ref[0] == ':') {
		slurm_error("shifter: --image=%s: not an image reference", image_req);
		return -1;
	}
	snprintf(req, sizeof req, "%s", ref);

	/* Inside a job, Slurm hands sbatch's and salloc's options on to every
	 * srun (so the plugin sees --image again): the same request keeps
	 * the id pinned at submission, whatever the tag names now. */
	if (getenv("SLURM_JOB_ID") != NULL) {
		const char *pinned = pinned_id(image_req);
		if (pinned != NULL) {
			char keep[ID_LEN + 1];
			snprintf(keep, sizeof keep, "%s", pinned);
			if (export(sp, "SHIFTER_IMAGETYPE", "id") < 0 || export(sp, "SHIFTER_IMAGE", keep) < 0 ||
			    export(sp, "SHIFTER_IMAGEREQUEST", image_req) < 0)
				return -1;
			return 0;
		}
	}

	char *argv[8];
	int n = 0;
	argv[n++] = shifterimg_path;
	if (cfg_path[0]) {
		argv[n++] = "--config";
		argv[n++] = cfg_path;
	}
	argv[n++] = "lookup";
	argv[n++] = "--";
	argv[n++] = req;
	argv[n] = NULL;
	int rc = run(argv, lookup_timeout, out, err, (uid_t)-1, (gid_t)-1);
	if (rc != 0) {
		slurm_error("shifter: image %s cannot be used: %s", image_req,
			    err[0] ? one_line(err) : "shifterimg lookup failed");
		return -1;
	}
	char *id = last_line(out);
	if (strncmp(id, "sha256:", 7) == 0)
		id += 7;
	if (!is_hex_id(id)) {
		slurm_error("shifter: image %s: shifterimg lookup printed no image id", image_req);
		return -1;
	}
	if (export(sp, "SHIFTER_IMAGETYPE", "id") < 0 || export(sp, "SHIFTER_IMAGE", id) < 0 ||
	    export(sp, "SHIFTER_IMAGEREQUEST", image_req) < 0)
		return -1;
	return 0;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	spank_context_t ctx = spank_context();
	if (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR)
		return 0;
	if (have_image && pin_image(sp) < 0)
		return -1;
	if (have_volume && export(sp, "SHIFTER_VOLUME", volume) < 0)
		return -1;
	if (have_module && export(sp, "SHIFTER_MODULE", module) < 0)
		return -1;
	return 0;
}

/* job_image returns the job's pinned image id from the prolog's
 * environment (SPANK_SHIFTER_IMAGE with SPANK_SHIFTER_IMAGETYPE=id), or
 * NULL. */
static const char *job_image(void)
{
	const char *t = getenv("SPANK_SHIFTER_IMAGETYPE");
	const char *id = getenv("SPANK_SHIFTER_IMAGE");
	if (t == NULL || id == NULL || strcmp(t, "id") != 0 || !is_hex_id(id))
		return NULL;
	return id;
}

static int parse_id(const char *s, unsigned long *out)
{
	char *end;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return (errno || *end != '\0' || *out >= 4294967295UL) ? -1 : 0;
}

static int job_ids(uid_t *uid, gid_t *gid)
{
	unsigned long u, g;
	if (parse_id(getenv("SLURM_JOB_UID"), &u) < 0 || parse_id(getenv("SLURM_JOB_GID"), &g) < 0)
		return -1;
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 0;
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	static char out[OUT_MAX], err[OUT_MAX];
	char ref[ID_LEN + 4];
	struct stat st;
	(void)sp;
	/* The prolog runs in a process of its own (slurmstepd spank
	 * prolog) where slurm_spank_init may not have run: read the
	 * plugstack.conf arguments here too. */
	if (parse_args(ac, av) < 0)
		return 0;
	const char *id = job_image();
	if (id == NULL || warm_mode == WARM_OFF)
		return 0;
	if (stat(socket_path, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		slurm_info("shifter: no shifterd socket at %s: not warming image %s", socket_path, id);
		return 0;
	}
	snprintf(ref, sizeof ref, "id:%s", id);
	char *argv[8];
	int n = 0;
	argv[n++] = shifterd_path;
	if (cfg_path[0]) {
		argv[n++] = "--config";
		argv[n++] = cfg_path;
	}
	argv[n++] = "warm";
	if (warm_mode == WARM_TRACE)
		argv[n++] = "--trace-only";
	argv[n++] = ref;
	argv[n] = NULL;
	/* As the job's user: shifterd warms only an image that user may
	 * use (the id comes from the job's environment, which the user
	 * controls). */
	uid_t uid;
	gid_t gid;
	if (job_ids(&uid, &gid) < 0) {
		slurm_error("shifter: prolog: no valid SLURM_JOB_UID/SLURM_JOB_GID: not warming %s", ref);
		return 0;
	}
	double start = now();
	int rc = run(argv, warm_timeout, out, err, uid, gid);
	if (rc > 0 && warm_mode == WARM_TRACE) {
		/* No start-up trace yet (the image's first start records
		 * one): warm all of it instead, in the time left. */
		int left = warm_timeout - (int)(now() - start);
		if (left > 0) {
			for (int i = 0; argv[i]; i++)
				if (strcmp(argv[i], "--trace-only") == 0) {
					for (int j = i; argv[j]; j++)
						argv[j] = argv[j + 1];
					break;
				}
			rc = run(argv, left, out, err, uid, gid);
		}
	}
	if (rc != 0)
		slurm_error("shifter: prolog: shifterd warm %s failed (the job goes on): %s", ref,
			    err[0] ? one_line(err) : "no message");
	else
		slurm_info("shifter: prolog: %s", out[0] ? one_line(out) : "warmed");
	return 0; /* never fail the job over its cache */
}

/* The epilog has nothing to do: shifterd's references belong to the
 * containers and go with their processes; an idle mount is unmounted by
 * shifterd after shifterdIdleUnmount. */
