//go:build race

package batchsim

const raceEnabled = true
