// Command check loads docker-compose.yml as Docker Compose would (compose-go, Apache-2.0: the
// Compose specification's JSON schema, interpolation, anchors and merges) and prints as JSON,
// for each service built from this repository (image autorma), its command and the
// environment variables it is given, and every host path the services mount: the test
// compares them with what the binary reads and what the repository holds. No Docker engine
// is needed.
//
// Usage: go run ./infra/compose/check docker-compose.yml
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

type service struct {
	Command     []string `json:"command"`
	Environment []string `json:"environment"`
}

type report struct {
	// The services built from this repository.
	Autorma map[string]service `json:"autorma"`
	// Every host path a service mounts (bind mounts), absolute.
	Mounts []string `json:"mounts"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: check docker-compose.yml")
		os.Exit(2)
	}
	path, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		// The variables the file interpolates come from this process (the test sets them).
		Environment: types.NewMapping(os.Environ()),
	}
	project, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("autorma", true)
	})
	if err != nil {
		fail(fmt.Errorf("not a valid Compose file: %w", err))
	}
	out := map[string]service{}
	mounts := []string{}
	for _, s := range project.Services {
		for _, volume := range s.Volumes {
			if volume.Type == types.VolumeTypeBind {
				mounts = append(mounts, volume.Source)
			}
		}
	}
	sort.Strings(mounts)
	for name, s := range project.Services {
		if !strings.HasPrefix(s.Image, "autorma") {
			continue
		}
		env := make([]string, 0, len(s.Environment))
		for key := range s.Environment {
			env = append(env, key)
		}
		sort.Strings(env)
		out[name] = service{Command: s.Command, Environment: env}
	}
	if len(out) == 0 {
		fail(fmt.Errorf("no service runs the autorma image"))
	}
	encoded, err := json.MarshalIndent(report{Autorma: out, Mounts: mounts}, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(encoded))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
