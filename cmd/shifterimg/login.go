// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// runLogin stores a registry login in the credentials file. On a
// terminal it prompts (the password without echo); otherwise it reads the
// user name and the password as two lines of stdin (or only the password
// with --username). The password is never taken from the command line.
func runLogin(ctx context.Context, a *app, args []string) error {
	fs := subFlags("login")
	username := fs.String("username", "", "user name (then stdin or the prompt gives only the password)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return &exitError{0, helpError(fs, "login [--username NAME] [registry]")}
		}
		return &exitError{2, fmt.Errorf("%w\nusage: shifterimg login [--username NAME] [registry]", err)}
	}
	if fs.NArg() > 1 {
		return &exitError{2, errors.New("usage: shifterimg login [--username NAME] [registry]")}
	}
	loc := location(fs.Arg(0))
	path, err := credsPath(a.getenv)
	if err != nil {
		return err
	}
	store, err := loadCreds(path)
	if err != nil {
		return err
	}

	user, pass := *username, ""
	if a.isTerminal(a.stdin) {
		if user == "" {
			fmt.Fprintf(a.stderr, "%s username: ", loc)
			user, err = readLineFrom(a.stdin)
			if err != nil {
				return fmt.Errorf("reading user name: %w", err)
			}
		}
		fmt.Fprintf(a.stderr, "%s password: ", loc)
		pass, err = a.readPassword(ctx, a.stdin)
		fmt.Fprintln(a.stderr)
		if err != nil {
			return err
		}
	} else {
		r := bufio.NewReader(a.stdin)
		if user == "" {
			if user, err = r.ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading user name from stdin: %w", err)
			}
		}
		if pass, err = r.ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading password from stdin: %w", err)
		}
	}
	user = strings.TrimRight(user, "\r\n")
	pass = strings.TrimRight(pass, "\r\n")
	switch {
	case user == "":
		return errors.New("empty user name")
	case strings.ContainsAny(user, ":\n"):
		return errors.New("user name may not contain ':'")
	case pass == "":
		return errors.New("empty password")
	}
	store.Registries[loc] = registryCred{Username: user, Password: pass}
	if err := store.save(path); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Stored credentials of %s for registry %s in %s (sent with your pulls from it)\n", user, loc, path)
	return nil
}

// readLineFrom reads one line from r without reading past it when r is a
// file (the password prompt reads the same terminal afterwards).
func readLineFrom(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < 4096 {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimSuffix(b.String(), "\r"), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && b.Len() > 0 {
				return b.String(), nil
			}
			return "", err
		}
	}
	return "", errors.New("line too long")
}
