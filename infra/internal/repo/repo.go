// Package repo finds hasp's repository root and reads the variables of its
// Makefile, for the infra module's tests.
package repo

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Root returns the repository root: the nearest directory above the
// working directory whose go.mod declares github.com/hasplock/hasp.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/hasplock/hasp\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repo: no github.com/hasplock/hasp go.mod above the working directory")
		}
		dir = parent
	}
}

// assignment matches a simple top-level Makefile variable: NAME ?= value,
// NAME := value or NAME = value.
var assignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*(\?=|:=|=)\s*(.*)$`)

// MakeVars returns the simple variables assigned at the top level of a
// Makefile (the first assignment of each name, comments stripped). Values
// that refer to other variables are returned as written.
func MakeVars(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "\t") {
			continue // a recipe
		}
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		m := assignment.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		if _, dup := vars[m[1]]; !dup {
			vars[m[1]] = strings.TrimSpace(m[3])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("repo: %s: %w", path, err)
	}
	return vars, nil
}

// Image returns the image the Makefile's `make image` builds by default:
// $(IMAGE):$(VERSION).
func Image(root string) (string, error) {
	vars, err := MakeVars(filepath.Join(root, "Makefile"))
	if err != nil {
		return "", err
	}
	img, ver := vars["IMAGE"], vars["VERSION"]
	if img == "" || ver == "" || strings.Contains(img+ver, "$") {
		return "", fmt.Errorf("repo: the Makefile must set IMAGE and VERSION to plain values, has IMAGE=%q VERSION=%q", img, ver)
	}
	return img + ":" + ver, nil
}
