// SPDX-License-Identifier: BSD-3-Clause

// Command shifterimg asks the image gateway to pull images and lists and
// looks them up:
//
//	shifterimg [--gateway URL]... [--system NAME] [-v] SUBCOMMAND [ARGS]
//
// The gateway URLs and the system name come from udiRoot.conf
// (imageGateway, system) unless given as flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/gateway/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio())
	stop()
	os.Exit(code)
}

// streams are the process's standard streams, replaceable in tests.
type streams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// isTerminal reports whether f (stdin or stdout) is a terminal.
	isTerminal func(f any) bool
	// readPassword reads a line from the terminal f without echo.
	readPassword func(ctx context.Context, f any) (string, error)
	getenv       func(string) string
}

func stdio() streams {
	return streams{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		isTerminal: isTerminal, readPassword: readPassword, getenv: os.Getenv,
	}
}

// app is what a subcommand runs with.
type app struct {
	streams
	log     *slog.Logger
	verbose bool
	system  string
	users   []string // -u/--user of the global flags (Shifter's position)
	groups  []string
	cfg     globalConfig
	// newClient makes the gateway client on first use, so that login and
	// help need no gateway.
	newClient func() (*client.Client, error)
}

// command is one subcommand.
type command struct {
	summary string
	usage   string
	run     func(ctx context.Context, a *app, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"pull":       {"pull an image and wait until it is READY or FAILED", "pull [-u USERS] [-g GROUPS] [--timeout D] [type:]tag", runPull},
		"pullnb":     {"ask for a pull and return at once", "pullnb [-u USERS] [-g GROUPS] [type:]tag", runPullNB},
		"lookup":     {"print the id of a READY image (alone on the last line)", "lookup [type:]tag", runLookup},
		"images":     {"list the READY images you may use", "images [--json]", runImages},
		"login":      {"store registry credentials for later pulls", "login [registry]", runLogin},
		"expire":     {"expire an image (gateway admins)", "expire [type:]tag", runExpire},
		"autoexpire": {"remove expired images (gateway admins)", "autoexpire", runAutoExpire},
	}
}

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "Usage: shifterimg [OPTIONS] SUBCOMMAND [ARGS]\n\nSubcommands:\n")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %s\n      %s\n", cmds[n].usage, cmds[n].summary)
	}
	fmt.Fprintf(w, "\nOptions:\n%s", fs.FlagUsages())
	fmt.Fprintf(w, "\nImage references are [type:]tag; the default type is docker.\n")
}

func run(ctx context.Context, args []string, s streams) int {
	fs := pflag.NewFlagSet("shifterimg", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	gateways := fs.StringArray("gateway", nil, "gateway URL: http(s)://HOST:PORT or unix:PATH (repeat to fail over in order; default: imageGateway of udiRoot.conf)")
	system := fs.String("system", "", "system (cluster) name (default: system of udiRoot.conf)")
	config := fs.String("config", "", "udiRoot.conf to read (default: $SHIFTER_CONFIG, else /etc/shifter/udiRoot.conf)")
	mungeSocket := fs.String("munge-socket", "", "munged socket for credentials to TCP gateways (default: munge's)")
	verbose := fs.BoolP("verbose", "v", false, "log requests and print raw JSON answers")
	users := fs.StringSliceP("user", "u", nil, "users allowed to use a pulled private image (names or uids, comma-separated)")
	groups := fs.StringSliceP("group", "g", nil, "groups allowed to use a pulled private image (names or gids, comma-separated)")
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(s.stderr, "shifterimg: %v\n\n", err)
		usage(s.stderr, fs)
		return 2
	}
	if *help {
		usage(s.stdout, fs)
		return 0
	}
	if fs.NArg() == 0 {
		usage(s.stderr, fs)
		return 2
	}
	name := fs.Arg(0)
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(s.stderr, "shifterimg: unknown subcommand %q\n\n", name)
		usage(s.stderr, fs)
		return 2
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	a := &app{
		streams: s,
		log:     slog.New(slog.NewTextHandler(s.stderr, &slog.HandlerOptions{Level: level})),
		verbose: *verbose,
		users:   *users,
		groups:  *groups,
	}
	cfgPath := *config
	if cfgPath == "" {
		cfgPath = s.getenv("SHIFTER_CONFIG")
	}
	// "SUBCOMMAND --help" prints help with no udiRoot.conf to read.
	needConfig := name != "login" && !wantsHelp(fs.Args()[1:]) && (len(*gateways) == 0 || *system == "")
	if needConfig {
		cfg, err := loadConfig(cfgPath)
		if err != nil {
			fmt.Fprintf(s.stderr, "shifterimg: %v\n(give --gateway and --system to run without udiRoot.conf)\n", err)
			return 1
		}
		a.cfg = cfg
	}
	urls := slices.Clone(*gateways)
	if len(urls) == 0 {
		urls = a.cfg.gateways
	}
	a.system = *system
	if a.system == "" {
		a.system = a.cfg.system
	}
	a.newClient = func() (*client.Client, error) {
		if len(urls) == 0 {
			return nil, fmt.Errorf("no gateway: set imageGateway in %s or give --gateway", a.cfg.file)
		}
		if a.system == "" {
			return nil, fmt.Errorf("no system: set system in %s or give --system", a.cfg.file)
		}
		opts := []client.Option{client.WithLogger(a.log)}
		if *mungeSocket != "" {
			opts = append(opts, client.WithMungeSocket(*mungeSocket))
		}
		return client.New(urls, opts...)
	}

	err := cmd.run(ctx, a, fs.Args()[1:])
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.code == 0 {
		fmt.Fprintln(s.stdout, err)
		return 0
	}
	fmt.Fprintf(s.stderr, "shifterimg %s: %v\n", name, err)
	if ee != nil {
		return ee.code
	}
	return 1
}

// wantsHelp reports whether a subcommand's arguments ask for its help
// (-h or --help before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "--help" {
			return true
		}
	}
	return false
}

// subFlags makes the flag set of a subcommand.
func subFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("shifterimg "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseSub parses a subcommand's flags and checks its argument count.
func parseSub(fs *pflag.FlagSet, args []string, nargs int, usage string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return &exitError{0, helpError(fs, usage)}
		}
		return &exitError{2, fmt.Errorf("%w\nusage: shifterimg %s", err, usage)}
	}
	if fs.NArg() != nargs {
		return &exitError{2, fmt.Errorf("want %d argument(s), got %d\nusage: shifterimg %s", nargs, fs.NArg(), usage)}
	}
	return nil
}

// helpError is a subcommand's help, printed as its "error" with exit 0.
func helpError(fs *pflag.FlagSet, usage string) error {
	return fmt.Errorf("usage: shifterimg %s\n%s", usage, fs.FlagUsages())
}

// tagSubcommand parses the arguments of a subcommand that takes one image
// reference and no flags of its own, and makes the gateway client.
func (a *app) tagSubcommand(name string, args []string) (itype, tag string, c *client.Client, err error) {
	fs := subFlags(name)
	if err = parseSub(fs, args, 1, commands()[name].usage); err != nil {
		return "", "", nil, err
	}
	if itype, tag, err = imageRef(fs.Arg(0)); err != nil {
		return "", "", nil, err
	}
	if c, err = a.newClient(); err != nil {
		return "", "", nil, err
	}
	return itype, tag, c, nil
}

// imageRef parses a "[type:]tag" argument.
func imageRef(arg string) (itype, tag string, err error) {
	itype, tag, err = client.ParseImage(strings.TrimSpace(arg))
	if err != nil {
		return "", "", &exitError{2, err}
	}
	return itype, tag, nil
}
