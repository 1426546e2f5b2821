// SPDX-License-Identifier: BSD-3-Clause

package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus metrics, on their own registry.
type metrics struct {
	reg         *prometheus.Registry
	pulls       *prometheus.CounterVec   // finished pulls by system and final state
	requests    *prometheus.CounterVec   // pull requests by system and outcome (queued, joined, cached)
	inProgress  *prometheus.GaugeVec     // jobs queued or running by system
	bytes       *prometheus.CounterVec   // bytes of squashfs published
	duration    *prometheus.HistogramVec // pull duration by system and final state
	lookups     *prometheus.CounterVec   // lookups by system and result
	conversions *prometheus.CounterVec   // builds actually run (after dedup)
	expired     *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shifter_gateway_pulls_total", Help: "Finished pulls by final state.",
		}, []string{"system", "state"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shifter_gateway_pull_requests_total", Help: "Pull requests by outcome: queued (new job), joined (in-flight job), cached (recent result).",
		}, []string{"system", "outcome"}),
		inProgress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shifter_gateway_pulls_in_progress", Help: "Jobs queued or running.",
		}, []string{"system"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shifter_gateway_published_bytes_total", Help: "Bytes of squashfs images published.",
		}, []string{"system"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shifter_gateway_pull_duration_seconds", Help: "Duration of pulls from start to final state.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 16),
		}, []string{"system", "state"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shifter_gateway_lookups_total", Help: "Lookups by result (found, not_found).",
		}, []string{"system", "result"}),
		conversions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shifter_gateway_conversions_total", Help: "Image builds (download and mksquashfs) actually run, after deduplication.",
		}, []string{"system"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shifter_gateway_expired_images_total", Help: "Images removed by expire and autoexpire.",
		}, []string{"system"}),
	}
	m.reg.MustRegister(m.pulls, m.requests, m.inProgress, m.bytes, m.duration, m.lookups, m.conversions, m.expired,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
