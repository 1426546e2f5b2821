// SPDX-License-Identifier: BSD-3-Clause

// Package api holds the JSON types of the image gateway's REST API,
// shared by the gateway and its clients (shifterimg, shifter). The paths
// are Shifter's: see docs/api.md.
package api

// Image states, in the order a pull goes through them.
const (
	StateInit    = "INIT"
	StatePending = "PENDING"
	// StateHashing: an import (POST /api/doimport/) copies and hashes
	// the user's file (Shifter's state for it).
	StateHashing    = "HASHING"
	StatePulling    = "PULLING"
	StateConversion = "CONVERSION"
	StateTransfer   = "TRANSFER"
	StateReady      = "READY"
	StateFailure    = "FAILURE"
	StateExpired    = "EXPIRED"
)

// Progress is a pull's transfer progress.
type Progress struct {
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
}

// Image is an image record, with Shifter's field names.
type Image struct {
	ID      string   `json:"id"` // hex sha256 of the manifest; "" until known
	System  string   `json:"system"`
	Itype   string   `json:"itype"` // "docker", or "custom" for imported images
	Tag     []string `json:"tag"`   // normalized tags pointing at this image
	Pulltag string   `json:"pulltag,omitempty"`
	// Image is the requested tag in queue answers (Shifter's queue
	// entries are {"status", "image"}).
	Image         string            `json:"image,omitempty"`
	Status        string            `json:"status"`
	StatusMessage string            `json:"status_message"`
	Progress      *Progress         `json:"progress,omitempty"`
	UserACL       []uint32          `json:"userACL"`
	GroupACL      []uint32          `json:"groupACL"`
	Env           []string          `json:"ENV"`
	Entry         []string          `json:"ENTRY"`
	Cmd           []string          `json:"CMD"`
	Workdir       string            `json:"WORKDIR"`
	Labels        map[string]string `json:"LABELS"`
	LastPull      float64           `json:"last_pull"`            // unix seconds
	Expiration    float64           `json:"expiration,omitempty"` // unix seconds
	Size          int64             `json:"size,omitempty"`       // squashfs bytes
}

// PullRequest is the optional JSON body of POST /api/pull/...
// (Shifter's form: comma-separated numeric lists).
type PullRequest struct {
	AllowedUIDs string `json:"allowed_uids,omitempty"`
	AllowedGIDs string `json:"allowed_gids,omitempty"`
	// AuthorizedLocations holds registry credentials ("user:password")
	// by registry host ("default" for the default registry), as in
	// Shifter's munge payload. Over TCP they travel only inside the munge
	// credential's encrypted payload (the same JSON object), never in the
	// request body; over a unix socket they may be in the body.
	AuthorizedLocations map[string]string `json:"authorized_locations,omitempty"`
}

// ImportRequest is the JSON body of POST /api/doimport/{system}/custom/{tag}/
// (Shifter's): the absolute path of a squashfs image on the gateway host,
// read with the requester's rights, its format (only "squashfs"), and
// optionally an ACL in the pull request's form.
type ImportRequest struct {
	FilePath    string `json:"filepath"`
	Format      string `json:"format"`
	AllowedUIDs string `json:"allowed_uids,omitempty"`
	AllowedGIDs string `json:"allowed_gids,omitempty"`
}

// List is the body of GET /api/list/{system}/ and /api/queue/{system}/.
type List struct {
	List []Image `json:"list"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Status  int    `json:"status"`
	Error   string `json:"error"`   // short reason, e.g. "not found"
	Message string `json:"message"` // human-readable detail
}

// Lookup is one logged lookup (GET /api/metrics/{system}/).
type Lookup struct {
	Time   float64 `json:"time"` // unix seconds
	User   string  `json:"user,omitempty"`
	UID    uint32  `json:"uid"`
	System string  `json:"system"`
	Type   string  `json:"type"`
	Tag    string  `json:"tag"`
	ID     string  `json:"id"`
}

// ShifterLookup is one logged lookup in Shifter's shape
// (GET /api/metrics/{system}/?format=shifter): every field always
// present, as Shifter's Mongo rows are.
type ShifterLookup struct {
	Time   float64 `json:"time"`
	User   string  `json:"user"`
	UID    uint32  `json:"uid"`
	System string  `json:"system"`
	Type   string  `json:"type"`
	Tag    string  `json:"tag"`
	ID     string  `json:"id"`
}

// LookupLog is the body of GET /api/metrics/{system}/: the newest
// lookups first, and the total number of lookups recorded.
type LookupLog struct {
	Total uint64   `json:"total"`
	List  []Lookup `json:"list"`
}

// ExpireResult is the body of the expire and autoexpire responses.
type ExpireResult struct {
	// Status lists the ids of the images expired (Shifter's field).
	Status []string `json:"status"`
	// Removed lists ids whose unreferenced files were removed.
	Removed []string `json:"removed,omitempty"`
}
