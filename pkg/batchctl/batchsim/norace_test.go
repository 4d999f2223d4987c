//go:build !race

package batchsim

const raceEnabled = false
