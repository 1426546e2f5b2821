// SPDX-License-Identifier: BSD-3-Clause

// Package client is the Go client of the image gateway's REST API
// (Shifter's paths, JSON types from gateway/api). It is used by
// shifterimg and by the shifter runtime to resolve tags.
//
// A Client talks to one or more gateways, given as URLs of the forms
// "http://HOST:PORT", "https://HOST:PORT" or "unix:/path/to/socket".
// Requests go to the first gateway; when a gateway cannot be reached
// (no HTTP response at all) the next one is tried, in order. An HTTP
// error response is an answer and is returned, not failed over.
//
// Over TCP every request carries a munge credential in the
// "authentication" header, made by running Debian's munge(1); registry
// credentials of a pull travel only inside that credential's encrypted
// payload. Over a unix socket the gateway identifies the caller by
// SO_PEERCRED, so no munge credential is made and registry credentials
// are sent in the request body.
package client
