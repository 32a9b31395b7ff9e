// Command check validates AutoRMA's Grafana dashboards against Grafana's own schema (the
// grafana-foundation-sdk types, Apache-2.0): strict decoding (no unknown or mistyped field, no
// required one missing) and the schema's constraints, for every panel kind. Grafana itself is
// AGPL-licensed and is not run here.
//
// Usage: go run ./infra/grafana/check DASHBOARD.json...   (exit 1 on the first invalid one)
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: check DASHBOARD.json...")
		os.Exit(2)
	}
	// Panels and queries decode into their plugins' own types.
	plugins.RegisterDefaultPlugins()
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

func check(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var board dashboard.Dashboard
	if err := failed(board.UnmarshalJSONStrict(raw)); err != nil {
		return fmt.Errorf("not a valid dashboard:\n%w", err)
	}
	if err := failed(board.Validate()); err != nil {
		return fmt.Errorf("violates the dashboard schema:\n%w", err)
	}
	// Each panel on its own too: the SDK's dashboard decoding checks them but then drops them
	// (the same empty-error-list bug as in `failed`).
	var layout struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &layout); err != nil {
		return err
	}
	panels := 0
	for i, rawPanel := range layout.Panels {
		var panel dashboard.Panel
		if err := failed(panel.UnmarshalJSONStrict(rawPanel)); err != nil {
			return fmt.Errorf("panels[%d]: %w", i, err)
		}
		if panel.Type == "row" {
			return fmt.Errorf("panels[%d]: rows are not used: every panel is at the top level", i)
		}
		if panel.Datasource == nil || panel.Datasource.Uid == nil || *panel.Datasource.Uid != "autorma-prometheus" {
			return fmt.Errorf("panel %q does not use the provisioned data source (uid autorma-prometheus)", deref(panel.Title))
		}
		if len(panel.Targets) == 0 {
			return fmt.Errorf("panel %q has no query", deref(panel.Title))
		}
		panels++
	}
	fmt.Printf("%s: valid (%d panels)\n", path, panels)
	return nil
}

// failed is err, unless it is the SDK's empty error list: its generated code returns its
// (nil) list of errors as a non-nil `error` when nothing failed.
func failed(err error) error {
	var list cog.BuildErrors
	if errors.As(err, &list) && len(list) == 0 {
		return nil
	}
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
