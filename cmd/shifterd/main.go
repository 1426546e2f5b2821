// SPDX-License-Identifier: BSD-3-Clause

// Command shifterd is the node daemon: it keeps one shared, read-only
// mount per image on the node, served through the node cache, hands
// references to it to the shifter runtime, and warms the cache before
// jobs. See docs/shifterd.md.
//
//	shifterd [--config FILE] [serve] [--mount-dir DIR] [--log-level L]
//	shifterd [--config FILE] warm [--trace-only] [--recent D] [IMAGE...]
//	shifterd [--config FILE] status [--json]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/shifter-go/shifter/udiroot"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "shifterd:", err)
		}
		os.Exit(1)
	}
}

// errSilent is a failure already reported.
var errSilent = errors.New("failed")

// app is what a subcommand runs with.
type app struct {
	cfg            *udiroot.Config
	socket         string
	log            *slog.Logger
	stdout, stderr io.Writer
}

const usage = `usage: shifterd [--config FILE] [--socket PATH] [serve [flags]]
       shifterd [--config FILE] [--socket PATH] warm [--trace-only] [--recent DURATION] [IMAGE...]
       shifterd [--config FILE] [--socket PATH] status [--json]

IMAGE is [docker:]TAG or id:ID. Settings come from udiRoot.conf (imagePath,
shifterdSocket, shifterdIdleUnmount, shifterdMetrics, nodeCacheDir,
nodeCacheSize, imageSource); see docs/shifterd.md.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := pflag.NewFlagSet("shifterd", pflag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.SetInterspersed(false)
	config := fl.String("config", udiroot.DefaultPath, "udiRoot.conf to read")
	socket := fl.String("socket", "", "shifterd's socket (default: udiRoot.conf shifterdSocket)")
	logLevel := fl.String("log-level", "info", "debug, info, warn or error")
	fl.Usage = func() { fmt.Fprint(stderr, usage, "\nGlobal flags:\n", fl.FlagUsages()) }
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: %w", *logLevel, err)
	}
	sub, rest := "serve", fl.Args()
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	// No trust checks: shifterd is not setuid, whoever runs it chose the
	// file (the daemon is started by root, from a unit root wrote).
	cfg, err := udiroot.Load(*config, false)
	if err != nil {
		return err
	}
	a := &app{cfg: cfg, socket: cfg.ShifterdSocket, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))}
	if *socket != "" {
		a.socket = *socket
	}
	if a.socket == "" {
		return errors.New("no socket: shifterdSocket is empty in " + cfg.File + " and --socket is not given")
	}
	switch sub {
	case "serve":
		return a.serve(ctx, rest)
	case "warm":
		return a.warm(ctx, rest)
	case "status":
		return a.status(ctx, rest)
	case "help":
		fl.Usage()
		return nil
	}
	return fmt.Errorf("unknown subcommand %q (serve, warm, status)", sub)
}
