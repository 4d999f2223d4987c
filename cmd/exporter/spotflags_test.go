package main

import (
	"io"
	"testing"
)

func TestSpotFlags(t *testing.T) {
	o, err := parseFlags([]string{"--spot.metadata-endpoint=http://127.0.0.1:9", "--spot.pool=gpu-spot"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.spot != (spotFlags{endpoint: "http://127.0.0.1:9", pool: "gpu-spot"}) {
		t.Fatalf("spot flags %+v", o.spot)
	}
}
