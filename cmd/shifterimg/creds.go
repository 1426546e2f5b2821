// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/shifter-go/shifter/gateway/client"
)

// The credentials file: ~/.shifter/credentials.json, in a 0700 directory,
// mode 0600, owned by the user; a file others can read or write is
// refused, as ssh does. Passwords are stored in clear (like Docker's
// config.json without a helper): the file's mode is the protection.
const (
	credsDir  = ".shifter"
	credsFile = "credentials.json"
)

// registryCred is one registry's stored login.
type registryCred struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// credStore is the content of the credentials file.
type credStore struct {
	Registries map[string]registryCred `json:"registries"`
}

func credsPath(getenv func(string) string) (string, error) {
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding home directory: %w", err)
		}
		home = h
	}
	return filepath.Join(home, credsDir, credsFile), nil
}

// location normalizes a registry name as login and pull key it: the
// Docker Hub names and "" become "default".
func location(registry string) string {
	registry = strings.TrimSpace(registry)
	if registry == "" || registry == "default" {
		return "default"
	}
	registry = strings.TrimPrefix(strings.TrimPrefix(registry, "https://"), "http://")
	registry = strings.TrimSuffix(registry, "/")
	return client.RegistryHost(registry + "/x")
}

// loadCreds reads the credentials file; a missing file is an empty store.
func loadCreds(path string) (*credStore, error) {
	s := &credStore{Registries: map[string]registryCred{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening credentials: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking credentials file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("credentials file %s has mode %v: refusing a file others can read (chmod 600 it)", path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("credentials file %s is owned by uid %d, not you", path, st.Uid)
	}
	if err := json.NewDecoder(f).Decode(s); err != nil {
		// Never quote the content: it holds passwords.
		return nil, fmt.Errorf("credentials file %s is not valid JSON", path)
	}
	if s.Registries == nil {
		s.Registries = map[string]registryCred{}
	}
	return s, nil
}

// save writes the store atomically with mode 0600 in a 0700 directory.
func (s *credStore) save(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restricting %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding credentials: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*.tmp")
	if err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credentials: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	return nil
}

// authorizedLocations returns the credentials a pull of tag sends: the
// stored login of the tag's registry, if any, keyed as Shifter's
// authorized_locations.
func (s *credStore) authorizedLocations(tag string) map[string]string {
	loc := client.RegistryHost(tag)
	c, ok := s.Registries[loc]
	if !ok {
		return nil
	}
	return map[string]string{loc: c.Username + ":" + c.Password}
}
