// SPDX-License-Identifier: BSD-3-Clause

// Command shifter-gateway is the image gateway service: it pulls images
// from registries, converts them to squashfs and publishes them into the
// systems' image stores. See docs/gateway.md (configuration) and
// docs/api.md (REST API).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/shifter-go/shifter/gateway"
	"github.com/shifter-go/shifter/imagestore"
	"github.com/spf13/pflag"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "shifter-gateway:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "import-shifter" {
		return runImportShifter(args[1:], os.Stdout)
	}
	if len(args) > 0 && args[0] == "convert-config" {
		return runConvertConfig(args[1:], os.Stdin, os.Stdout, os.Stderr)
	}
	fl := pflag.NewFlagSet("shifter-gateway", pflag.ContinueOnError)
	configPath := fl.String("config", "", "configuration file (JSON, docs/gateway.md); default: embedded defaults")
	listen := fl.StringArray("listen", nil, "address to serve on, HOST:PORT or unix:PATH (repeatable; replaces the config's)")
	imageDir := fl.String("image-dir", "", "image directory of the system (see --system)")
	dataDir := fl.String("data-dir", "", "database, cache and work directory")
	system := fl.String("system", "", "system name: renames the default system, or selects/creates the one --image-dir applies to")
	insecure := fl.StringArray("insecure-registry", nil, "registry HOST:PORT reachable over plain HTTP (repeatable)")
	workers := fl.Int("workers", 0, "number of pull workers")
	logLevel := fl.String("log-level", "", "debug, info, warn or error")
	checkOnly := fl.Bool("check-config", false, "validate the configuration, print it and exit")
	rebuild := fl.Bool("rebuild-db", false, "rebuild the records of the images in the image stores that the database does not know (a damaged or lost database) from their <id>.json files, and exit; the gateway must be stopped")
	fl.SortFlags = false
	if err := fl.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return nil
		}
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	cfg := gateway.DefaultConfig()
	fromFile := false
	if *configPath != "" {
		c, err := gateway.LoadConfig(*configPath)
		if err != nil {
			return err
		}
		cfg, fromFile = c, true
	}
	if len(*listen) > 0 {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
		cfg.CacheDir, cfg.WorkDir = "", ""
	}
	if *workers > 0 {
		cfg.Workers = *workers
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	for _, h := range *insecure {
		if cfg.Registries == nil {
			cfg.Registries = map[string]gateway.Registry{}
		}
		r := cfg.Registries[h]
		r.Insecure = true
		cfg.Registries[h] = r
	}
	if err := applySystemFlags(cfg, fromFile, *system, *imageDir); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if *checkOnly {
		b, _ := jsonIndent(cfg)
		fmt.Println(string(b))
		return nil
	}
	log, err := gateway.NewLogger(os.Stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	if *rebuild {
		res, err := gateway.RebuildRecords(gateway.Options{Config: cfg, Puller: noPuller{}, Logger: log})
		if err != nil {
			return err
		}
		fmt.Printf("rebuilt %d image records and %d tags from the image stores (%d tags left to existing records)\n",
			res.Images, res.Tags, res.Skipped)
		return nil
	}
	puller, err := gateway.NewPuller(cfg, log.With("component", "pull"))
	if err != nil {
		return err
	}
	var ls []net.Listener
	for _, a := range cfg.Listen {
		l, err := gateway.Listen(a)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return err
		}
		ls = append(ls, l)
	}
	g, err := gateway.New(gateway.Options{Config: cfg, Puller: puller, Logger: log})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("gateway started", "systems", cfg.SystemNames(), "listen", cfg.Listen, "data_dir", cfg.DataDir, "workers", cfg.Workers)
	serr := g.Serve(ctx, ls)
	cerr := g.Close()
	if serr != nil {
		return serr
	}
	return cerr
}

// runImportShifter is "shifter-gateway import-shifter": it imports a
// NERSC Shifter gateway's state (docs/migrating-from-shifter.md).
func runImportShifter(args []string, stdout io.Writer) error {
	fl := pflag.NewFlagSet("shifter-gateway import-shifter", pflag.ContinueOnError)
	configPath := fl.String("config", "", "the gateway's configuration file (JSON, docs/gateway.md); default: embedded defaults")
	dataDir := fl.String("data-dir", "", "the gateway's database, cache and work directory")
	export := fl.String("mongo-export", "", "Shifter's images collection from mongoexport (one JSON document per line; - for standard input)")
	imageDir := fl.String("image-dir", "", "the system's image directory, holding Shifter's <id>.squashfs and <id>.meta (default: the configuration's)")
	system := fl.String("system", "", "the system (Shifter's platform name) to import")
	logLevel := fl.String("log-level", "", "debug, info, warn or error")
	fl.SortFlags = false
	fl.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: shifter-gateway import-shifter --mongo-export FILE --system NAME [--image-dir DIR] [--config FILE] [--data-dir DIR]\n\n"+
			"Imports the READY images of one system of a NERSC Shifter gateway into this gateway's database\n"+
			"and writes their <id>.json next to <id>.squashfs and <id>.meta. Idempotent; stop the gateway first.\n\n%s", fl.FlagUsages())
	}
	if err := fl.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return nil
		}
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("import-shifter: unexpected argument %q", fl.Arg(0))
	}
	if *export == "" || *system == "" {
		return errors.New("import-shifter: --mongo-export and --system are required")
	}
	cfg := gateway.DefaultConfig()
	fromFile := false
	if *configPath != "" {
		c, err := gateway.LoadConfig(*configPath)
		if err != nil {
			return err
		}
		cfg, fromFile = c, true
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
		cfg.CacheDir, cfg.WorkDir = "", ""
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	if err := applySystemFlags(cfg, fromFile, *system, *imageDir); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if s := cfg.Systems[*system]; s == nil {
		return fmt.Errorf("import-shifter: no system %q in the configuration", *system)
	} else if s.Transfer != gateway.TransferLocal {
		return fmt.Errorf("import-shifter: system %q keeps its images on another host (transfer %q): run the import where its image directory is local", *system, s.Transfer)
	}
	log, err := gateway.NewLogger(os.Stderr, cfg.LogLevel)
	if err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if *export != "-" {
		f, err := os.Open(*export)
		if err != nil {
			return fmt.Errorf("import-shifter: %w", err)
		}
		defer f.Close()
		in = f
	}
	res, err := gateway.ImportShifter(gateway.Options{Config: cfg, Puller: noPuller{}, Logger: log}, *system, in)
	if err != nil {
		return err
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	fmt.Fprintf(stdout, "imported %d images (%d already known) and %d tags (%d left to other images); wrote %d <id>.json; %d documents not imported\n",
		res.Images, res.Known, res.Tags, res.Skipped, res.Metadata, res.Ignored)
	return nil
}

// runConvertConfig is "shifter-gateway convert-config": it converts
// NERSC Shifter's imagemanager.json into this gateway's configuration on
// stdout, with one warning line on stderr for each key that has no
// meaning here (docs/migrating-from-shifter.md). Nothing is written to
// stdout unless the conversion succeeds.
func runConvertConfig(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fl := pflag.NewFlagSet("shifter-gateway convert-config", pflag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shifter-gateway convert-config imagemanager.json > gateway.json\n\n"+
			"Converts NERSC Shifter's gateway configuration (- for standard input) into this gateway's\n"+
			"(docs/gateway.md). Keys without a meaning here are named on standard error.\n")
	}
	if err := fl.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return nil
		}
		return err
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return errors.New("convert-config: want one file (imagemanager.json, or - for standard input)")
	}
	var b []byte
	var err error
	if name := fl.Arg(0); name == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return fmt.Errorf("convert-config: %w", err)
	}
	cfg, notes, err := gateway.ConvertImagemanager(b)
	if err != nil {
		return fmt.Errorf("convert-config: %w", err)
	}
	out, err := jsonIndent(cfg)
	if err != nil {
		return fmt.Errorf("convert-config: %w", err)
	}
	for _, n := range notes {
		fmt.Fprintln(stderr, "shifter-gateway: convert-config:", n)
	}
	_, err = fmt.Fprintln(stdout, string(out))
	return err
}

// applySystemFlags applies --system and --image-dir.
func applySystemFlags(cfg *gateway.Config, fromFile bool, system, imageDir string) error {
	target := system
	if system != "" && !fromFile {
		// Embedded defaults: the flag renames the default system.
		if s, ok := cfg.Systems[gateway.DefaultSystem]; ok && system != gateway.DefaultSystem {
			delete(cfg.Systems, gateway.DefaultSystem)
			cfg.Systems[system] = s
		}
	}
	if imageDir == "" {
		return nil
	}
	if target == "" {
		if len(cfg.Systems) != 1 {
			return fmt.Errorf("--image-dir: the configuration has %d systems; name one with --system", len(cfg.Systems))
		}
		for n := range cfg.Systems {
			target = n
		}
	}
	s, ok := cfg.Systems[target]
	if !ok {
		s = &gateway.System{Transfer: gateway.TransferLocal, Admins: []string{"root"}}
		cfg.Systems[target] = s
	}
	s.ImageDir = imageDir
	return nil
}

// noPuller is the Puller of --rebuild-db, which pulls nothing.
type noPuller struct{}

func (noPuller) Resolve(context.Context, string, map[string]string) (*gateway.Resolved, error) {
	return nil, errors.New("no pulls while rebuilding the database")
}

func (noPuller) Build(context.Context, *gateway.Resolved, *os.File, gateway.ProgressFunc) (*imagestore.Metadata, error) {
	return nil, errors.New("no pulls while rebuilding the database")
}
