package predict_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

func TestFitAll(t *testing.T) {
	good := sine(3*1440, time.Minute, 500, 100)
	series := []predict.Series{good, {Step: time.Minute}, {Start: t0, Values: []float64{1}}, good}
	fs, errs := predict.FitAll(context.Background(), series, 10, predict.Options{}, 2)
	if errs[0] != nil || errs[3] != nil {
		t.Fatalf("errors on good series: %v", errs)
	}
	if !errors.Is(errs[1], predict.ErrNoHistory) || errs[2] == nil {
		t.Errorf("want errors for the empty and step-less series, got %v", errs)
	}
	// The same series gives the same forecast, whichever worker fitted it.
	for i := range fs[0].P50 {
		if fs[0].P50[i] != fs[3].P50[i] || fs[0].P90[i] != fs[3].P90[i] {
			t.Fatalf("step %d: %v vs %v", i, fs[0].P50[i], fs[3].P50[i])
		}
	}
	want := good.End()
	if !fs[0].Origin.Equal(want) || fs[0].Len() != 10 {
		t.Errorf("origin %v len %d, want %v and 10", fs[0].Origin, fs[0].Len(), want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs = predict.FitAll(ctx, series[:1], 10, predict.Options{}, 1)
	if !errors.Is(errs[0], context.Canceled) {
		t.Errorf("cancelled: %v", errs[0])
	}
}
