package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
)

// cmdVersion prints Herald's version: the module version the binary was
// built from (a tag, or a pseudo-version), the VCS revision, its time and
// whether the tree was modified, and the Go version.
func cmdVersion(_ context.Context, args []string, io *stdio) error {
	fs := newFlagSet("version", "version", io)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(io.out, "herald (no build information)")
		return nil
	}
	fmt.Fprintln(io.out, versionLine(info))
	return nil
}

// versionLine describes a build: "herald v1.2.0 (rev 0123abcd4567,
// 2026-12-04T10:00:00Z, modified) go1.26.8".
func versionLine(info *debug.BuildInfo) string {
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	var vcs []string
	if rev := settings["vcs.revision"]; rev != "" {
		vcs = append(vcs, "rev "+rev[:min(len(rev), 12)])
	}
	if t := settings["vcs.time"]; t != "" {
		vcs = append(vcs, t)
	}
	if settings["vcs.modified"] == "true" {
		vcs = append(vcs, "modified")
	}
	line := "herald " + version
	if len(vcs) > 0 {
		line += " (" + strings.Join(vcs, ", ") + ")"
	}
	return line + " " + info.GoVersion
}
