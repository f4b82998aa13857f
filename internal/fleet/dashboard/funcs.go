package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05Z") },
	"num":   func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"inc":   func(i int) int { return i + 1 },
	"join":  strings.Join,
	"path":  pathEscape,
}
