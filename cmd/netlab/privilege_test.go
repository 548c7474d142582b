package main

import (
	"strings"
	"testing"
)

// TestNoticeWanted: the note that file capabilities are not used comes
// with the verbs that act on labs and sandboxes, not with version,
// completion, doctor or a usage.
func TestNoticeWanted(t *testing.T) {
	for args, want := range map[string]bool{
		"up lab.yaml":                  true,
		"--sandbox x down --all":       true,
		"status":                       true,
		"exec lab ns -- netlab --help": true,
		"sandbox ls":                   true,
		"version":                      false,
		"completion bash":              false,
		"doctor":                       false,
		"validate lab.yaml":            false,
		"up --help":                    false,
		"":                             false,
		"--sandbox":                    false,
	} {
		if got := noticeWanted(strings.Fields(args)); got != want {
			t.Errorf("%q: %v, want %v", args, got, want)
		}
	}
}
