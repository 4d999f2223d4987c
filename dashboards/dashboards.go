// Package dashboards builds infercast's Grafana dashboards in Go with
// grafana-foundation-sdk. Each dashboard is first a Spec (rows of panels,
// each with its unit, description and PromQL), so the same source renders
// the dashboard JSON (Build) and the Markdown preview of its layout
// (Preview for docs/dashboards.md, ReadmePreview for the README's marked
// region). dashboards/gen writes them all; tests fail when the committed
// files differ from what the generator makes now.
package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Kind is the panel visualisation.
type Kind string

const (
	TimeSeries    Kind = "timeseries"
	Stat          Kind = "stat"
	StateTimeline Kind = "state-timeline"
)

// Query is one PromQL target of a panel.
type Query struct {
	Expr   string
	Legend string
}

// Panel is one panel: what it shows, in which unit, and why it matters.
type Panel struct {
	Kind        Kind
	Title       string
	Description string
	// Unit is a Grafana unit id: "s", "percentunit", "currencyUSD", "reqps", "short", "bytes".
	Unit    string
	Queries []Query
	// Width in grid columns (of 24); 0 means 8. Height 0 means 8.
	Width, Height uint32
	// Stacked draws the series of a time series stacked (shares of a total).
	Stacked bool
	// Min and Max bound the axis or gauge when set.
	Min, Max *float64
}

// Row is a titled group of panels.
type Row struct {
	Title  string
	Panels []Panel
}

// Variable is a dashboard template variable filled from label values.
type Variable struct {
	Name, Label string
	// Description is Grafana's tooltip: what the values are.
	Description string
	// Query is the label_values() query of the Prometheus data source.
	Query string
}

// Spec is one dashboard.
type Spec struct {
	// File is the JSON file name, without extension.
	File        string
	UID         string
	Title       string
	Description string
	Tags        []string
	Variables   []Variable
	// VariablesWhy says why the dashboard offers the variables it does
	// (and not model or workload): the preview prints it.
	VariablesWhy string
	Rows         []Row
}

// Datasource is the name of the data source variable every query uses.
const Datasource = "datasource"

var promDS = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + Datasource + "}")}

func ptr(f float64) *float64 { return &f }

// Build turns a Spec into a Grafana dashboard (current schema).
func Build(s Spec) (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder(s.Title).
		Uid(s.UID).
		Description(s.Description).
		Tags(append([]string{"infercast"}, s.Tags...)).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder(Datasource).
			Label("Data source").
			Type("prometheus"))
	for _, v := range s.Variables {
		q := v.Query
		b = b.WithVariable(dashboard.NewQueryVariableBuilder(v.Name).
			Label(v.Label).
			Description(v.Description).
			Datasource(promDS).
			Query(dashboard.StringOrMap{String: &q}).
			Definition(q).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*"))
	}
	// Panel ids are unique per dashboard: links and "view panel" use them.
	id := uint32(0)
	for _, r := range s.Rows {
		id++
		b = b.WithRow(dashboard.NewRowBuilder(r.Title).Id(id))
		for _, p := range r.Panels {
			id++
			pb, err := panel(p, id)
			if err != nil {
				return dashboard.Dashboard{}, fmt.Errorf("%s / %s / %s: %w", s.Title, r.Title, p.Title, err)
			}
			b = b.WithPanel(pb)
		}
	}
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("%s: %w", s.Title, err)
	}
	return d, nil
}

func targets(qs []Query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], 0, len(qs))
	for i, q := range qs {
		out = append(out, prometheus.NewDataqueryBuilder().
			Datasource(promDS).
			Expr(q.Expr).
			LegendFormat(q.Legend).
			RefId(string(rune('A'+i))))
	}
	return out
}

func size(p Panel) (w, h uint32) {
	w, h = p.Width, p.Height
	if w == 0 {
		w = 8
	}
	if h == 0 {
		h = 8
	}
	return w, h
}

func panel(p Panel, id uint32) (cog.Builder[dashboard.Panel], error) {
	if p.Description == "" {
		return nil, fmt.Errorf("no description")
	}
	if p.Unit == "" {
		return nil, fmt.Errorf("no unit")
	}
	if len(p.Queries) == 0 {
		return nil, fmt.Errorf("no queries")
	}
	w, h := size(p)
	switch p.Kind {
	case TimeSeries, "":
		b := timeseries.NewPanelBuilder().
			Id(id).Title(p.Title).Description(p.Description).Unit(p.Unit).
			Datasource(promDS).Targets(targets(p.Queries)).
			Span(w).Height(h).
			FillOpacity(10).
			Legend(common.NewVizLegendOptionsBuilder().
				DisplayMode(common.LegendDisplayModeList).
				Placement(common.LegendPlacementBottom).
				ShowLegend(true)).
			Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
		if p.Stacked {
			b = b.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
		}
		if p.Min != nil {
			b = b.Min(*p.Min)
		}
		if p.Max != nil {
			b = b.Max(*p.Max)
		}
		return b, nil
	case Stat:
		b := stat.NewPanelBuilder().
			Id(id).Title(p.Title).Description(p.Description).Unit(p.Unit).
			Datasource(promDS).Targets(targets(p.Queries)).
			Span(w).Height(h).
			GraphMode(common.BigValueGraphModeArea).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
		if p.Min != nil {
			b = b.Min(*p.Min)
		}
		if p.Max != nil {
			b = b.Max(*p.Max)
		}
		return b, nil
	case StateTimeline:
		return statetimeline.NewPanelBuilder().
			Id(id).Title(p.Title).Description(p.Description).Unit(p.Unit).
			Datasource(promDS).Targets(targets(p.Queries)).
			Span(w).Height(h), nil
	default:
		return nil, fmt.Errorf("unknown panel kind %q", p.Kind)
	}
}
