package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
)

// Label names: the scrape layer's, discovery's __meta_*, relabeling's __tmp_*, UTF-8 names
// (Prometheus 3 accepts any non-empty UTF-8 name) and names that differ only in case.
var names = []string{
	"__address__", "__address__", "__meta_kubernetes_pod_label_app", "__meta_kubernetes_namespace",
	"__meta_kubernetes_pod_label_app_kubernetes_io_name", "__meta_x", "__tmp_a", "__tmp_hash",
	"job", "instance", "app", "App", "team.name", "ñame", "__scheme__", "__metrics_path__",
	"__param_x", "label_1", "x", "y", "__name__", "日本", "a-b",
}

// Values: empty, separators, newlines, Unicode letters and digits (where \d, \w, \s and (?i)
// differ between Unicode-aware and ASCII classes), regex metacharacters and template syntax.
var values = []string{
	"", "a", "A", "api", "API", "10.0.0.1:9100", "[::1]:80", "a;b", ";", "foo\nbar", "\n",
	"Ünïcödé", "İstanbul", "ß", "ẞ", "ǅ", "१२३", "٣", "x y", "\t", "café", "$1", "${1}", ".*",
	"(a|b)", "a.b", "K", "k", "ﬀ", "Σσς", "123", "0", "日本", "🙂", "a\u200bb", "\u00a0", "\u2003",
	"abc", "ab", "aaa", "cd", "bcd", "host:8080", "x\u000by", "__meta_foo", "le_1", "AbC", "é",
	"Ⅻ", "²", "_", "a_b", "a-b", "a\rb", "\u0085", "ǈ", "ΐ", "ﬃ",
}

// Regexes that probe where Go's RE2 (grafana/regexp) and Rust's regex crate may differ:
// anchoring, (?i) folding, Perl classes on Unicode, . and newlines, empty matches, alternation
// preference, named groups, repetition limits and syntax one accepts and the other refuses.
var regexes = []string{
	"", "(.*)", ".*", ".+", "(.+)", "a", "api", "(?i)API", "(?i)k", "(?i)ß", "(?i)σ+", "(?i)ǅ",
	`\d+`, `(\d+)`, `[0-9]+`, `\w+`, `(\w+)`, `\W`, `\s`, `\S+`, `\D+`, `\b`, `a\b.*`, `.*\B.*`,
	`(.*)\b(.*)`, `[[:alpha:]]+`, `[[:^digit:]]*`, `\pL+`, `\p{Greek}+`, `\p{Lu}.*`, `\PL*`, `\p{L}`,
	`\pN+`, `\p{Nd}+`, `(a|ab)(c|bcd)?(.*)`, `(?P<host>[^:]+):(?P<port>\d+)`,
	`(?<host>[^:]+):(?<port>.*)`, `([^:]+)(?::\d+)?`, `(.*):(.*)`, `(?s).`, `(?-s:.*)`, `(?-s).*`,
	`.`, `foo.bar`, `(?m)^a$`, `(?m:^.*$)`, `a|`, `|a`, `()`, `(a*)*`, `(a*)+`, `(|a)+`, `x*`,
	`(?U)(.+)(.*)`, `(.+?)(.*)`, `a{2,3}`, `a{2}`, `a{,3}`, `a{1001}`, `(a){1000}`, `x{`, `{`,
	`a{1`, `\z`, `(.*)\z`, `\A(.*)`, `\Z`, `\Q.*\E`, `\Qa.b\E(.*)`, `\101`, `\0`, `\x41`,
	`\x{1F642}`, `\u0041`, `[a&&b]`, `[a--b]`, `[a~~b]`, `[[a]`, `[a[]`, `[]a]`, `[^]a]`, `[a-]`,
	`\<`, `\>`, `\<.*`, `\b{start}.*`, `(?x) a b`, `(?u)\w+`, `(?R).`, `(`, `)`, `[`, `*`, `a**`,
	`a*?`, `a++`, `a*+`, `\p{Letter}`, `\p{Alphabetic}+`, `\p{^Greek}+`, `\C`, `\8`, `\e`, `\v`,
	`\f`, `\%`, `\_`, `\-`, `\ `, `\'`, `\/`, `\~`, `\@`, `\#`, `\&`, `\:`, `(?i)[a-z]+`,
	`(?i)[k]`, `[\d]+`, `[^\d]+`, `[\w.]+`, `[\s]`, `[\S]+`, `[\W]`, `[[:word:]]+`, `[[:space:]]`,
	`(?P<1a>x)`, `(?P<a.b>.*)`, `(?P<a>x)(?P<a>y)`, `\pZ`, `[\p{Greek}]+`, `__meta_kubernetes_pod_label_(.+)`,
	`__meta_(.*)`, `__tmp_.*`, `__.*`, `(?i)__META_.*`, `job|instance`, `[a-z_]+`, `team\.name`,
	`ñ.*`, `(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.*)`, `((((a))))`, strings.Repeat("(?:", 260) + "a" + strings.Repeat(")", 260),
	`(?i)(?-i:a)A`, `(?i:İ)`, `(?i)ﬀ`, `[^a]`, `[^\n]*`, `\n`, `(.*)\n(.*)`, `(?:a|b)*`, `\x{00e9}`,
	`\p{Han}+`, `\P{Han}+`, `[\p{Lu}\d]+`, `(?i)\p{Lu}+`, `[^[:ascii:]]+`, `[[:^ascii:]]+`, `\pM`,
	`a{0}`, `(a){0}(.*)`, `(?:)`, `(?i)`, `$`, `^`, `^^a$$`, `(a)|b`, `(a)|(b)`, `.*(.).*`,
	`(?s:.)+`, `(?i)K`, `(?i)ǈ`, `(.*)(\d)`, `[é]`, `[^é]+`,
	`^*`, `\b*(.*)`, `(?i)(?-i)a`, `(?)a`, `(?-)a`, `(?i-i:a)`, `a(?i)*`, `(?P<n>a)(?P=n)`,
	`[[:foo:]]`, `[[:alpha:]`, `[a-\d]`, `[\d-z]+`, `\x{110000}`, `\x{}`, `\xZ1`, `a{2}{3}`,
	`a{2}*`, `a*{2}`, `(?i)[^k]+`, `x{2,1}`, `x{01}`, `x{0}`, `x{99999999}`, `\p{greek}+`,
	`\p{Old_Italic}`, `\p{letter}+`, `\p{L`, `\p`, `(?s-s:.)`, `(?U)(a+?)(.*)`, `(a+?)(b??)(.*)`,
	`(a{1,2}?)(.*)`, `\z*`, `(?i)[[:upper:]]+`, `(?i)\W`, `[\x{1F600}-\x{1F64F}]`, `.*\x{85}.*`,
	`\p{Cs}`, `\pC+`, `\p{Any}+`, `\p{Assigned}+`, `(?m)(.*)$`, `a)|(b`, `a)(?:(b`, `(a)|b)(c`,
	`\`, `a\`, `[\]]`, `[]`, `[^]`, `(?i)[a-k]+`, `[\a\f\t\v]`, `\_`, `\ `,
}

var replacements = []string{
	"$1", "${1}", "$1x", "${1}x", "$$", "$$1", "$", "$2", "${2}", "$0", "${0}", "$host",
	"${host}:${port}", "$host_x", "${host}_x", "$01", "${01}", "$1é", "${1}é", "${a-b}", "${}",
	"${1", "x", "", "$10", "${1}0", "new_${1}", "$name", "a$", "é", "$1$2", "$x$1", "${1}${2}",
	"$é", "$1.$2", "${a.b}", "$1-$2", "${ 1}", "$1\n", "$+", "${1}}", "$a.b", "$$$1",
}

var targets = []string{
	"t", "target", "app", "job", "__address__", "__tmp_t", "$1", "${1}", "${1}_x", "$1_x",
	"t_$1", "team.name", "ñ", "0bad", "a-b", "$host", "$$", "", "__meta_out", "${2}", "$01",
	"instance", "x", "$1é", "${a-b}",
}

var separators = []string{";", "", ",", "-", ";;", "é", "\n", "$1"}

// Modulus scalars as written (YAML 1.1 integers, with forms Go's yaml.v2 reads differently).
var moduli = []string{"1", "2", "3", "7", "10", "1000", "18446744073709551615", "0", "-1",
	"0x10", "010", "1e3", "+5", "1_000", "\"5\"", "18446744073709551616", "0o10", "0b101"}

var actions = []string{"replace", "keep", "drop", "keepequal", "dropequal", "hashmod",
	"labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase"}

// Spellings of actions beyond the canonical ones (Prometheus lower-cases the action).
var oddActions = []string{"Replace", "KEEP", "labelMap", "", "explode", "Lowercase"}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randomLabels(r *rand.Rand) []Label {
	n := 2 + r.IntN(6)
	seen := map[string]bool{}
	out := []Label{{"__address__", pick(r, []string{"10.0.0.1:9100", "a:1", "[::1]:80", "host:8080"})}}
	seen["__address__"] = true
	for len(out) < n {
		name := pick(r, names)
		if seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, Label{name, pick(r, values)})
	}
	if r.IntN(4) == 0 {
		out = out[1:] // no __address__
	}
	return out
}

// quote writes a YAML double-quoted scalar (JSON string syntax is valid YAML).
func quote(s string) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// randomRules writes 1-4 rules as a YAML flow sequence. Each rule mostly writes only the fields
// its action uses (so most rules are valid), sometimes the others too (Prometheus refuses some).
func randomRules(r *rand.Rand) string {
	n := 1 + r.IntN(4)
	rules := make([]string, 0, n)
	for i := 0; i < n; i++ {
		rules = append(rules, randomRule(r))
	}
	return "[" + strings.Join(rules, ", ") + "]"
}

func randomRule(r *rand.Rand) string {
	action := pick(r, actions)
	if r.IntN(40) == 0 {
		action = pick(r, oddActions)
	}
	stray := r.IntN(8) == 0 // write fields the action does not use
	var f []string
	srcs := func() {
		k := r.IntN(4)
		if k == 0 && r.IntN(2) == 0 {
			return
		}
		s := make([]string, 0, k)
		for j := 0; j < k; j++ {
			s = append(s, quote(pick(r, append(names, "absent", "ABSENT"))))
		}
		f = append(f, "source_labels: ["+strings.Join(s, ", ")+"]")
	}
	maybe := func(p int, key string, pool []string) {
		if r.IntN(p) == 0 {
			f = append(f, key+": "+quote(pick(r, pool)))
		}
	}
	switch strings.ToLower(action) {
	case "replace":
		srcs()
		maybe(4, "separator", separators)
		maybe(1, "regex", regexes)
		maybe(2, "replacement", replacements)
		if r.IntN(24) != 0 {
			f = append(f, "target_label: "+quote(pick(r, targets)))
		}
	case "keep", "drop":
		srcs()
		maybe(4, "separator", separators)
		maybe(1, "regex", regexes)
	case "keepequal", "dropequal", "lowercase", "uppercase":
		srcs()
		if r.IntN(24) != 0 {
			f = append(f, "target_label: "+quote(pick(r, targets[:8])))
		}
		if strings.HasSuffix(action, "case") {
			maybe(4, "separator", separators)
		}
	case "hashmod":
		srcs()
		maybe(4, "separator", separators)
		if r.IntN(10) != 0 {
			f = append(f, "modulus: "+pick(r, moduli))
		}
		if r.IntN(24) != 0 {
			f = append(f, "target_label: "+quote(pick(r, targets[:8])))
		}
	case "labelmap":
		maybe(1, "regex", regexes)
		maybe(2, "replacement", replacements)
	case "labeldrop", "labelkeep":
		maybe(1, "regex", regexes)
	}
	if stray {
		has := func(key string) bool {
			for _, x := range f {
				if strings.HasPrefix(x, key+":") {
					return true
				}
			}
			return false
		}
		switch k := r.IntN(5); {
		case k == 0 && !has("regex"):
			f = append(f, "regex: "+quote(pick(r, regexes)))
		case k == 1 && !has("separator"):
			f = append(f, "separator: "+quote(pick(r, separators)))
		case k == 2 && !has("replacement"):
			f = append(f, "replacement: "+quote(pick(r, replacements)))
		case k == 3 && !has("modulus"):
			f = append(f, "modulus: "+pick(r, moduli))
		case k == 4 && !has("source_labels"):
			f = append(f, "source_labels: []")
		}
	}
	if action != "replace" || r.IntN(3) != 0 {
		f = append(f, "action: "+quote(action))
	}
	r.Shuffle(len(f), func(i, j int) { f[i], f[j] = f[j], f[i] })
	return "{" + strings.Join(f, ", ") + "}"
}
