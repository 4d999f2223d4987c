// Package batchctl tunes each model server's dynamic batcher to its traffic
// under a latency SLO: it learns how long a batch of b requests takes
// (alpha + beta·b, with a pooled jitter) from what the exporter observes,
// picks the max_batch_size and max_queue_delay that give the most throughput
// while the predicted p99 of queue delay plus execution stays within the SLO
// at the current and forecast arrival rate, backs off multiplicatively when
// the server is seen violating the SLO although it was not overloaded
// (Clipper's AIMD guard), probes upward slowly, and never changes a server
// more often than it tolerates. Actuators apply the chosen knobs to Triton,
// Ray Serve, a generic webhook, or nowhere (recommend-only, the default).
package batchctl
