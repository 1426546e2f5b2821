// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ShifterAPIListen is where Shifter's API listened by default (its
// api.py; gunicorn deployments used port 5000): ConvertImagemanager
// listens there too, besides the unix socket.
const ShifterAPIListen = "0.0.0.0:8000"

// ConvertImagemanager converts NERSC Shifter's gateway configuration,
// imagemanager.json, into a gateway configuration (docs/gateway.md,
// docs/migrating-from-shifter.md). Every key with a meaning here is
// mapped; each key without one gives a line "warning: KEY: ..." of notes,
// and each choice the mapping makes a line "note: ...". Input that Shifter itself would not run with (not
// a JSON object, a value of the wrong type, a platform without
// accesstype or image directory) is an error naming the key; so is a
// result that would not pass Validate.
func ConvertImagemanager(b []byte) (*Config, []string, error) {
	top, err := jsonObject(b, "imagemanager.json")
	if err != nil {
		return nil, nil, err
	}
	c := DefaultConfig()
	c.Listen = []string{DefaultListen, ShifterAPIListen}
	c.Systems = map[string]*System{}
	cv := &converter{c: c}
	cv.notef("listen: %s (the unix socket) and %s, Shifter's default port; use where udiRoot.conf's imageGateway points", DefaultListen, ShifterAPIListen)
	for _, k := range sortedKeys(top) {
		if err := cv.top(k, top[k]); err != nil {
			return nil, nil, err
		}
	}
	if _, ok := top["Platforms"]; !ok || len(c.Systems) == 0 {
		return nil, nil, errors.New("imagemanager.json: Platforms: no platform (system) defined")
	}
	// The result must be a configuration this gateway runs with: check a
	// copy as the gateway reads it.
	out, err := json.Marshal(c)
	if err != nil {
		return nil, nil, err
	}
	chk, err := ParseConfig(out)
	if err == nil {
		err = chk.Validate()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("imagemanager.json converts to an invalid configuration: %w", err)
	}
	return c, cv.notes, nil
}

type converter struct {
	c     *Config
	notes []string
}

// notef notes a choice of the mapping ("note: ...").
func (cv *converter) notef(format string, a ...any) {
	cv.notes = append(cv.notes, "note: "+fmt.Sprintf(format, a...))
}

// unused warns of a key that has no meaning here ("warning: ...").
func (cv *converter) unused(key, why string) {
	cv.notes = append(cv.notes, fmt.Sprintf("warning: %s: no meaning here (%s); ignored", key, why))
}

// jsonObject decodes one JSON object into its members.
func jsonObject(b []byte, what string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", what, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%s: not a JSON object (null)", what)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", what)
	}
	return m, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// eachMember decodes key's value as an object and calls fn on each member,
// in name order, up to the first error.
func eachMember(key string, v json.RawMessage, fn func(name string, v json.RawMessage) error) error {
	m, err := decodeAs[map[string]json.RawMessage](key, v, "an object")
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(m) {
		if err := fn(name, m[name]); err != nil {
			return err
		}
	}
	return nil
}

// decodeAs decodes v into a value of T, naming key in the error.
func decodeAs[T any](key string, v json.RawMessage, want string) (T, error) {
	var x T
	if err := json.Unmarshal(v, &x); err != nil {
		return x, fmt.Errorf("imagemanager.json: %s: want %s, got %s", key, want, short(v))
	}
	return x, nil
}

// imStrings reads a string (split on white space, as Shifter's
// command options are) or a list of strings.
func imStrings(key string, v json.RawMessage) ([]string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return strings.Fields(s), nil
	}
	return decodeAs[[]string](key, v, "a string or a list of strings")
}

func short(v json.RawMessage) string {
	s := string(bytes.TrimSpace(v))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// absDir checks an absolute directory path.
func absDir(key, p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("imagemanager.json: %s %q: want an absolute path", key, p)
	}
	return filepath.Clean(p), nil
}

// dockerHub are the names Shifter's configurations give Docker Hub.
var dockerHub = []string{"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

func (cv *converter) top(k string, v json.RawMessage) error {
	c := cv.c
	switch k {
	case "WorkerThreads":
		n, err := decodeAs[int](k, v, "a number")
		if err != nil {
			return err
		}
		c.Workers = n
	case "LogLevel":
		s, err := decodeAs[string](k, v, "a string")
		if err != nil {
			return err
		}
		switch l := strings.ToLower(s); l {
		case "debug", "info", "error":
			c.LogLevel = l
		case "warn", "warning":
			c.LogLevel = "warn"
		case "critical":
			c.LogLevel = "error"
			cv.notef("LogLevel: critical is error here")
		default:
			return fmt.Errorf("imagemanager.json: LogLevel %q: want debug, info, warn, error or critical", s)
		}
	case "MongoDBURI", "MongoDB":
		cv.unused(k, "the state is a database in data_dir; carry Shifter's images collection over with shifter-gateway import-shifter")
	case "Authentication":
		s, err := decodeAs[string](k, v, "a string")
		if err != nil {
			return err
		}
		switch s {
		case "munge":
			c.Authentication = AuthMunge
		case "mock":
			c.Authentication = AuthMunge
			cv.notef("Authentication: mock (Shifter's test mode) has no equivalent; munge is used")
		default:
			return fmt.Errorf("imagemanager.json: Authentication %q: want munge or mock", s)
		}
	case "DefaultImageLocation":
		s, err := decodeAs[string](k, v, "a string")
		if err != nil {
			return err
		}
		if s == "" {
			return errors.New("imagemanager.json: DefaultImageLocation: empty")
		}
		if slices.Contains(dockerHub, s) {
			s = "index.docker.io"
		}
		c.DefaultRegistry = s
	case "DefaultImageFormat":
		s, err := decodeAs[string](k, v, "a string")
		if err != nil {
			return err
		}
		if s != "squashfs" {
			cv.unused(fmt.Sprintf("DefaultImageFormat %q", s), "images are always squashfs here")
		}
	case "PullUpdateTimeout":
		n, err := decodeAs[float64](k, v, "a number of seconds")
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("imagemanager.json: PullUpdateTimeout %v: negative", n)
		}
		c.PullUpdateTimeout = Duration(time.Duration(n * float64(time.Second)))
	case "PullUpdateTime":
		cv.unused(k, "Shifter honoured PullUpdateTimeout only when this key was there too; PullUpdateTimeout is always honoured here")
	case "ImageExpirationTimeout":
		s, err := decodeAs[string](k, v, `a string "D:H:M:S"`)
		if err != nil {
			return err
		}
		d, err := parseShifterDuration(s)
		if err != nil {
			return fmt.Errorf("imagemanager.json: ImageExpirationTimeout: %w", err)
		}
		c.Expiration = Duration(d)
	case "CacheDirectory", "ExpandDirectory":
		s, err := decodeAs[string](k, v, "a string")
		if err != nil {
			return err
		}
		d, err := absDir(k, s)
		if err != nil {
			return err
		}
		// A directory of its own inside Shifter's: the blob cache's
		// layout differs, and the work directory is emptied at every
		// start.
		d = filepath.Join(d, "shifter-gateway")
		if k == "CacheDirectory" {
			c.CacheDir = d
			cv.notef("CacheDirectory: cache_dir is %s (a directory of its own: Shifter's cached layers are not reused)", d)
		} else {
			c.WorkDir = d
			cv.notef("ExpandDirectory: work_dir is %s (a directory of its own: the gateway empties work_dir at every start)", d)
		}
	case "ConverterOptions":
		opts, err := decodeAs[map[string]json.RawMessage](k, v, "an object")
		if err != nil {
			return err
		}
		for _, f := range sortedKeys(opts) {
			args, err := imStrings(k+"."+f, opts[f])
			if err != nil {
				return err
			}
			if f != "squashfs" {
				cv.unused(k+"."+f, "images are always squashfs here")
				continue
			}
			c.MksquashfsArgs = args
			cv.notef("ConverterOptions.squashfs: mksquashfs_args %q, added to the gateway's own options (Shifter's replaced its -no-xattrs)", args)
		}
	case "ImportUsers":
		u, err := convertImportUsers(v)
		if err != nil {
			return err
		}
		if !u.All && len(u.Users) == 1 && strings.HasPrefix(strings.TrimSpace(string(v)), `"`) {
			cv.notef("ImportUsers: %q is taken as the one user of that name (Shifter matched any user whose name is part of it)", u.Users[0])
		}
		c.ImportUsers = u
	case "Metrics":
		on, err := decodeAs[bool](k, v, "true or false")
		if err != nil {
			return err
		}
		c.LookupLog = on
	case "examiner":
		cv.unused(k, "no examiner hooks: the gateway checks every layer it flattens itself")
	case "DefaultLustreReplication", "DefaultOstCount", "usergroupService", "mountCommand":
		cv.unused(k, "unused by Shifter too")
	case "Locations":
		return eachMember(k, v, cv.location)
	case "Platforms":
		return eachMember(k, v, cv.platform)
	default:
		cv.unused(k, "not a key of Shifter's either")
	}
	return nil
}

// convertImportUsers reads Shifter's ImportUsers: "all", "none"/"None",
// a list of names, or (Shifter's substring test) one name.
func convertImportUsers(v json.RawMessage) (*ImportUsers, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		switch strings.ToLower(s) {
		case "all":
			return &ImportUsers{All: true}, nil
		case "none", "":
			return &ImportUsers{}, nil
		}
		v, _ = json.Marshal([]string{s})
	}
	var u ImportUsers
	if err := json.Unmarshal(v, &u); err != nil {
		return nil, fmt.Errorf("imagemanager.json: ImportUsers: %w", err)
	}
	return &u, nil
}

// parseShifterDuration parses Shifter's "D:H:M:S" (each an integer, as
// its int() reads them).
func parseShifterDuration(s string) (time.Duration, error) {
	f := strings.Split(s, ":")
	if len(f) != 4 {
		return 0, fmt.Errorf("%q: want D:H:M:S", s)
	}
	var n [4]int64
	for i, x := range f {
		v, err := strconv.ParseInt(strings.TrimSpace(x), 10, 32)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%q: field %d is not a non-negative integer", s, i+1)
		}
		n[i] = v
	}
	secs := ((n[0]*24+n[1])*60+n[2])*60 + n[3]
	if secs <= 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	if secs > int64(100*365*24*3600) {
		return 0, fmt.Errorf("%q: more than 100 years", s)
	}
	return time.Duration(secs) * time.Second, nil
}

// location maps Locations.<name>: its URL's scheme and host, its CA.
func (cv *converter) location(name string, v json.RawMessage) error {
	key := "Locations." + name
	m, err := decodeAs[map[string]json.RawMessage](key, v, "an object")
	if err != nil {
		return err
	}
	host := name
	var reg Registry
	set := false
	for _, k := range sortedKeys(m) {
		kk := key + "." + k
		switch k {
		case "remotetype":
			s, err := decodeAs[string](kk, m[k], "a string")
			if err != nil {
				return err
			}
			if s != "dockerv2" {
				cv.unused(fmt.Sprintf("%s %q", kk, s), "registries are reached with the Docker registry (v2) and OCI protocols")
			}
		case "url":
			s, err := decodeAs[string](kk, m[k], "a string")
			if err != nil {
				return err
			}
			u, err := url.Parse(s)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return fmt.Errorf("imagemanager.json: %s %q: want http://HOST[:PORT] or https://HOST[:PORT]", kk, s)
			}
			if u.Scheme == "http" {
				reg.Insecure, set = true, true
			}
			if u.Host != name {
				host = u.Host
				if !slices.Contains(dockerHub, name) || !slices.Contains(dockerHub, u.Hostname()) {
					cv.notef("%s: its settings apply to %s; references name the registry by its host here (%s/repo:tag), not by %q", kk, host, host, name)
				}
			}
			if u.Path != "" && u.Path != "/" {
				cv.notef("%s: the path %q is not used: registries are reached at the host's /v2/", kk, u.Path)
			}
		case "sslcacert":
			s, err := decodeAs[string](kk, m[k], "a string")
			if err != nil {
				return err
			}
			if !filepath.IsAbs(s) {
				return fmt.Errorf("imagemanager.json: %s %q: Shifter read it relative to its working directory; give the absolute path", kk, s)
			}
			reg.CAFile, set = filepath.Clean(s), true
		case "authMethod":
			cv.unused(kk, "token or basic authentication is chosen from the registry's answer")
		case "authentication":
			cv.unused(kk, "unused by Shifter too")
		default:
			cv.unused(kk, "not a key of Shifter's either")
		}
	}
	if slices.Contains(dockerHub, host) && !set {
		return nil
	}
	if set {
		if cv.c.Registries == nil {
			cv.c.Registries = map[string]Registry{}
		}
		cv.c.Registries[host] = reg
	}
	return nil
}

// platform maps Platforms.<name> to systems.<name>.
func (cv *converter) platform(name string, v json.RawMessage) error {
	key := "Platforms." + name
	m, err := decodeAs[map[string]json.RawMessage](key, v, "an object")
	if err != nil {
		return err
	}
	s := &System{}
	access := ""
	var local, ssh map[string]json.RawMessage
	var hosts []string
	for _, k := range sortedKeys(m) {
		kk := key + "." + k
		switch k {
		case "accesstype":
			if access, err = decodeAs[string](kk, m[k], "a string"); err != nil {
				return err
			}
		case "mungeSocketPath":
			p, err := decodeAs[string](kk, m[k], "a string")
			if err != nil {
				return err
			}
			if s.MungeSocket, err = absDir(kk, p); err != nil {
				return err
			}
		case "admins":
			if s.Admins, err = decodeAs[[]string](kk, m[k], "a list of user names"); err != nil {
				return err
			}
		case "local":
			if local, err = decodeAs[map[string]json.RawMessage](kk, m[k], "an object"); err != nil {
				return err
			}
		case "ssh":
			if ssh, err = decodeAs[map[string]json.RawMessage](kk, m[k], "an object"); err != nil {
				return err
			}
		case "host":
			if hosts, err = imStrings(kk, m[k]); err != nil {
				return err
			}
		case "use_external":
			cv.unused(kk, "no skopeo or umoci: the gateway pulls every manifest kind (Docker schema 2, OCI, lists) itself")
		case "policy_file":
			cv.unused(kk, "skopeo signature policies are not supported")
		case "usergroupService":
			cv.unused(kk, "unused by Shifter too")
		default:
			cv.unused(kk, "not a key of Shifter's either")
		}
	}
	sub := func(obj map[string]json.RawMessage, part string, known ...string) {
		for _, k := range sortedKeys(obj) {
			if !slices.Contains(known, k) {
				cv.unused(key+"."+part+"."+k, "not used for accesstype "+access)
			}
		}
	}
	switch access {
	case "local":
		dir, err := imageDirOf(key+".local", local)
		if err != nil {
			return err
		}
		s.ImageDir, s.Transfer = dir, TransferLocal
		sub(local, "local", "imageDir")
		if ssh != nil {
			cv.unused(key+".ssh", "accesstype is local")
		}
		if len(hosts) > 0 {
			cv.unused(key+".host", "accesstype is local")
		}
	case "remote":
		dir, err := imageDirOf(key+".ssh", ssh)
		if err != nil {
			return err
		}
		if len(hosts) == 0 || hosts[0] == "" {
			return fmt.Errorf("imagemanager.json: %s.host: accesstype remote needs a host", key)
		}
		if len(hosts) > 1 {
			cv.notef("%s.host: only %s is used (as in Shifter)", key, hosts[0])
		}
		s.ImageDir, s.Transfer = dir, TransferSSH
		s.SSH = &SSH{Host: hosts[0]}
		for _, k := range sortedKeys(ssh) {
			kk := key + ".ssh." + k
			var err error
			switch k {
			case "imageDir":
			case "username":
				s.SSH.User, err = decodeAs[string](kk, ssh[k], "a string")
			case "key":
				s.SSH.Key, err = decodeAs[string](kk, ssh[k], "a string")
			case "sshCmdOptions":
				s.SSH.SSHOptions, err = imStrings(kk, ssh[k])
			case "scpCmdOptions":
				s.SSH.SCPOptions, err = imStrings(kk, ssh[k])
			default:
				cv.unused(kk, "not a key of Shifter's either")
			}
			if err != nil {
				return err
			}
		}
		if local != nil {
			cv.unused(key+".local", "accesstype is remote")
		}
	case "":
		return fmt.Errorf("imagemanager.json: %s.accesstype: required (local or remote)", key)
	default:
		return fmt.Errorf("imagemanager.json: %s.accesstype %q: want local or remote", key, access)
	}
	cv.c.Systems[name] = s
	return nil
}

// imageDirOf reads the imageDir of a platform's local or ssh part.
func imageDirOf(key string, obj map[string]json.RawMessage) (string, error) {
	raw, ok := obj["imageDir"]
	if !ok {
		return "", fmt.Errorf("imagemanager.json: %s.imageDir: required", key)
	}
	p, err := decodeAs[string](key+".imageDir", raw, "a string")
	if err != nil {
		return "", err
	}
	return absDir(key+".imageDir", p)
}
