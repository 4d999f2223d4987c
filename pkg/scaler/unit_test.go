package scaler

import (
	"strings"
	"testing"

	"github.com/infercast/infercast/pkg/capacity"
)

func TestParseMetadata(t *testing.T) {
	cat := StaticCatalog{"chat": {capacity.TierOnDemand, capacity.TierSpot}, "embed": {capacity.TierOnDemand}}
	tests := []struct {
		name    string
		md      map[string]string
		want    Target
		wantErr string
	}{
		{"ok", map[string]string{"workload": "chat", "tier": "spot"}, Target{"chat", "spot"}, ""},
		{"keda's own keys", map[string]string{"workload": "chat", "tier": "on-demand", "scalerAddress": "x:1", "enableTLS": "true", "unsafeSsl": "false"}, Target{"chat", "on-demand"}, ""},
		{"nil", nil, Target{}, `missing required key "workload"`},
		{"no tier", map[string]string{"workload": "chat"}, Target{}, `missing required key "tier"`},
		{"blank workload", map[string]string{"workload": " ", "tier": "spot"}, Target{}, `missing required key "workload"`},
		{"bad tier", map[string]string{"workload": "chat", "tier": "Spot"}, Target{}, `tier "Spot" is not valid: want "on-demand" or "spot"`},
		{"unknown workload", map[string]string{"workload": "nope", "tier": "spot"}, Target{}, `workload "nope" is not in the policy`},
		{"tier not configured", map[string]string{"workload": "embed", "tier": "spot"}, Target{}, `workload "embed" has no tier "spot" in the policy`},
		{"typo key", map[string]string{"workoad": "chat", "workload": "chat", "tier": "spot"}, Target{}, `unknown key(s) "workoad"`},
		{"long value cut", map[string]string{"workload": strings.Repeat("x", 500), "tier": "spot"}, Target{}, `"` + strings.Repeat("x", 64) + `"…`},
		// KEDA resolves workloadFromEnv: WORKLOAD from the scale target's
		// container and forwards the value under workloadFromEnv.
		{"from env", map[string]string{"workloadFromEnv": "chat", "tierFromEnv": "spot"}, Target{"chat", "spot"}, ""},
		{"both spellings", map[string]string{"workload": "chat", "workloadFromEnv": "chat", "tier": "spot"}, Target{}, `both "workload" and "workloadFromEnv"`},
		// An unset variable: KEDA drops the key.
		{"from env unset", map[string]string{"tier": "spot"}, Target{}, `or "workloadFromEnv"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMetadata(tt.md, cat)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
