package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	promconfig "github.com/prometheus/prometheus/config"
	"golang.org/x/net/html"
)

// Page is one HTML page of the Go allocator as data: what a person reads and the links they
// follow, independent of the markup's whitespace.
type Page struct {
	Path        string `json:"path"`
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
	// NoSniff is the X-Content-Type-Options header.
	NoSniff    string   `json:"x_content_type_options"`
	Title      string   `json:"title"`
	Headings   []string `json:"headings"`
	Paragraphs []string `json:"paragraphs"`
	// Nav is the links of the page header's navigation.
	Nav    []Cell  `json:"nav"`
	Tables []Table `json:"tables"`
	// Masked says which cells were blanked because they depend on placement (least-weighted).
	Masked string `json:"masked,omitempty"`
}

// Table is one table: its header cells and its rows.
type Table struct {
	Headers []string `json:"headers"`
	Rows    [][]Cell `json:"rows"`
}

// Cell is a cell's text (whitespace-trimmed) and the href of its link, if any.
type Cell struct {
	Text string `json:"text"`
	Link string `json:"link"`
}

// debugPages fetches the index and every /debug page (pprof excepted) for the case's jobs,
// collectors and a few targets, with the missing, unknown and invalid parameters each handler
// checks.
func debugPages(addr string, scs []*promconfig.ScrapeConfig, collectors []string, leastWeighted bool) ([]Page, error) {
	paths := []string{"/", "/debug/targets", "/debug/jobs", "/debug/scrape_configs"}
	for _, sc := range scs {
		paths = append(paths, "/debug/job?job_id="+url.QueryEscape(sc.JobName))
	}
	paths = append(paths, "/debug/job?job_id=no-such-job", "/debug/job", "/debug/job?job_id=a&job_id=b")
	for _, c := range collectors {
		paths = append(paths, "/debug/collector?collector_id="+url.QueryEscape(c))
	}
	paths = append(paths, "/debug/collector?collector_id=nobody", "/debug/collector", "/debug/collector?collector_id=")
	var out []Page
	for _, p := range paths {
		page, err := fetchPage(addr, p)
		if err != nil {
			return nil, err
		}
		out = append(out, page)
	}
	// A few targets, as /debug/targets links them (sorted by hash: the same on every run).
	var targets []string
	for _, row := range out[1].Tables[0].Rows {
		if len(targets) < 3 {
			targets = append(targets, row[1].Link)
		}
	}
	targets = append(targets, "/debug/target?target_hash=12345", "/debug/target?target_hash=0",
		"/debug/target?target_hash=abc", "/debug/target", "/debug/target?target_hash=18446744073709551616")
	for _, p := range targets {
		page, err := fetchPage(addr, p)
		if err != nil {
			return nil, err
		}
		out = append(out, page)
	}
	if leastWeighted {
		for i := range out {
			maskPlacement(&out[i])
		}
	}
	return out, nil
}

// maskPlacement blanks the cells that depend on which collector a target was placed on: the
// least-weighted strategy places in Go map order, which differs between runs.
func maskPlacement(p *Page) {
	path := strings.SplitN(p.Path, "?", 2)[0]
	blank := func(t, col int) {
		if t >= len(p.Tables) {
			return
		}
		for _, row := range p.Tables[t].Rows {
			if col < 0 {
				for i := range row {
					row[i] = Cell{}
				}
			} else if col < len(row) {
				row[col] = Cell{}
			}
		}
	}
	switch path {
	case "/":
		p.Masked = "table 1 column 1"
		blank(1, 1)
	case "/debug/targets":
		p.Masked = "table 0 column 2"
		blank(0, 2)
	case "/debug/job":
		p.Masked = "table 0 column 1"
		blank(0, 1)
	case "/debug/collector":
		p.Masked = "table 0 every column"
		blank(0, -1)
	case "/debug/target":
		if len(p.Tables) > 0 && len(p.Tables[0].Rows) > 0 {
			p.Masked = "table 0 row 0 column 1"
			p.Tables[0].Rows[0][1] = Cell{}
		}
	}
}

func fetchPage(addr, path string) (Page, error) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Page{}, err
	}
	p := Page{
		Path:        path,
		Status:      resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"),
		NoSniff:     resp.Header.Get("X-Content-Type-Options"),
		Headings:    []string{},
		Paragraphs:  []string{},
		Nav:         []Cell{},
		Tables:      []Table{},
	}
	doc, err := html.Parse(strings.NewReader(string(b)))
	if err != nil {
		return Page{}, fmt.Errorf("%s: %w", path, err)
	}
	extract(doc, &p)
	if strings.HasPrefix(path, "/debug/scrape_configs") && len(p.Tables) > 0 {
		// Listed in Go map order: sorted by job.
		rows := p.Tables[0].Rows
		sort.SliceStable(rows, func(i, j int) bool { return rows[i][0].Text < rows[j][0].Text })
	}
	return p, nil
}

// extract walks the parsed document: the title, h1 and p texts, the nav's links and each
// table (the header's cells, then each row of the body).
func extract(n *html.Node, p *Page) {
	if n.Type == html.ElementNode {
		switch n.Data {
		case "title":
			p.Title = text(n)
			return
		case "h1":
			p.Headings = append(p.Headings, text(n))
			return
		case "p":
			p.Paragraphs = append(p.Paragraphs, text(n))
			return
		case "nav":
			for _, a := range all(n, "a") {
				p.Nav = append(p.Nav, Cell{Text: text(a), Link: attr(a, "href")})
			}
			return
		case "table":
			p.Tables = append(p.Tables, table(n))
			return
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		extract(c, p)
	}
}

func table(n *html.Node) Table {
	t := Table{Headers: []string{}, Rows: [][]Cell{}}
	for _, sec := range children(n) {
		for _, tr := range children(sec) {
			if tr.Type != html.ElementNode || tr.Data != "tr" {
				continue
			}
			var cells []Cell
			for _, td := range children(tr) {
				if td.Type != html.ElementNode || (td.Data != "td" && td.Data != "th") {
					continue
				}
				c := Cell{Text: text(td)}
				if as := all(td, "a"); len(as) > 0 {
					c.Link = attr(as[0], "href")
				}
				cells = append(cells, c)
			}
			if sec.Data == "thead" {
				for _, c := range cells {
					t.Headers = append(t.Headers, c.Text)
				}
			} else {
				if cells == nil {
					cells = []Cell{}
				}
				t.Rows = append(t.Rows, cells)
			}
		}
	}
	return t
}

func children(n *html.Node) []*html.Node {
	var out []*html.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, c)
	}
	return out
}

func all(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(m *html.Node) {
		if m.Type == html.ElementNode && m.Data == tag {
			out = append(out, m)
		}
		for c := m.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

// text is the node's text content, trimmed of surrounding whitespace.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(m *html.Node) {
		if m.Type == html.TextNode {
			b.WriteString(m.Data)
		}
		for c := m.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}
