// techempower: the Go peer of apps/techempower for bench/techempower.sh,
// written the way TechEmpower's Go entries on the standard library are
// (frameworks/Go/go-std): net/http with its ServeMux, encoding/json
// serialising a struct per request, html/template for fortunes, and pgx v4
// (Debian's golang-github-jackc-pgx-v4-dev) through a pgxpool whose
// connections prepare the three statements once (AfterConnect).  Built
// offline in GOPATH mode against /usr/share/gocode (GO111MODULE=off), as
// bench/go/pgx.
//
//	usage: techempower [port [seconds]]   (port 8080, 127.0.0.1 only;
//	                                       seconds > 0: exit then)
//
// Environment: TE_DB_URL, the database (a postgres:// URL or libpq keyword
// string; default TechEmpower's benchmarkdbuser@127.0.0.1/hello_world;
// bench/techempower.sh passes the server of apps/techempower/with_db.sh);
// TE_POOL, the pool's connections (default 4 x GOMAXPROCS, at least 4);
// GOMAXPROCS.
//
// The six test types, with TechEmpower's URLs and semantics:
//
//	/plaintext          "Hello, World!", text/plain
//	/json               {"message":"Hello, World!"}, application/json
//	/db                 one random World row {"id":N,"randomNumber":M}
//	/queries?queries=N  N rows, each its own query, as a JSON array; N is
//	                    clamped to 1..500 and anything not a number is 1
//	/fortunes           every Fortune row plus "Additional fortune added at
//	                    request time.", sorted by message, as an HTML table
//	                    (html/template escapes), text/html; charset=utf-8
//	/updates?queries=N  N rows read one by one, each given a new random
//	                    number, written back in one pgx batch (the
//	                    UPDATEs, sorted by id so that concurrent requests
//	                    cannot deadlock, sent in one round trip and run as
//	                    one implicit transaction), returned as /queries does
//
// Random ids and numbers are in 1..10000.  Every response carries Server,
// Date (net/http's), Content-Type and Content-Length: bodies are built in
// a buffer first, so net/http never falls back to chunked encoding.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

const (
	worldRows     = 10000
	defaultDBURL  = "postgres://benchmarkdbuser:benchmarkdbpass@127.0.0.1:5432/hello_world?sslmode=disable"
	worldSelect   = "SELECT id, randomNumber FROM World WHERE id = $1"
	worldUpdate   = "UPDATE World SET randomNumber = $1 WHERE id = $2"
	fortuneSelect = "SELECT id, message FROM Fortune"
	extraFortune  = "Additional fortune added at request time."
)

type message struct {
	Message string `json:"message"`
}

type world struct {
	ID           int32 `json:"id"`
	RandomNumber int32 `json:"randomNumber"`
}

type fortune struct {
	ID      int32
	Message string
}

var fortuneTmpl = template.Must(template.New("fortunes").Parse(
	"<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>" +
		"<tr><th>id</th><th>message</th></tr>" +
		"{{range .}}<tr><td>{{.ID}}</td><td>{{.Message}}</td></tr>{{end}}" +
		"</table></body></html>"))

var pool *pgxpool.Pool

// reply sends body with the headers every test type requires (net/http
// adds Date).
func reply(w http.ResponseWriter, ctype string, body []byte) {
	h := w.Header()
	h["Server"] = []string{"Go"}
	h["Content-Type"] = []string{ctype}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.Write(body)
}

func replyJSON(w http.ResponseWriter, v interface{}) {
	body, err := json.Marshal(v)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, "application/json", body)
}

func fail(w http.ResponseWriter, err error) {
	log.Println(err)
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// queriesParam: TechEmpower's rule, 1..500, a missing or bad value is 1.
func queriesParam(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("queries"))
	if err != nil || n < 1 {
		return 1
	}
	if n > 500 {
		return 500
	}
	return n
}

func randomID() int32 { return int32(rand.Intn(worldRows) + 1) }

func oneWorld(ctx context.Context, wd *world) error {
	return pool.QueryRow(ctx, "worldSelect", randomID()).Scan(&wd.ID, &wd.RandomNumber)
}

func plaintext(w http.ResponseWriter, r *http.Request) {
	reply(w, "text/plain", []byte("Hello, World!"))
}

func jsonHandler(w http.ResponseWriter, r *http.Request) {
	replyJSON(w, &message{Message: "Hello, World!"})
}

func dbHandler(w http.ResponseWriter, r *http.Request) {
	var wd world
	if err := oneWorld(r.Context(), &wd); err != nil {
		fail(w, err)
		return
	}
	replyJSON(w, &wd)
}

func queriesHandler(w http.ResponseWriter, r *http.Request) {
	worlds := make([]world, queriesParam(r))
	for i := range worlds {
		if err := oneWorld(r.Context(), &worlds[i]); err != nil {
			fail(w, err)
			return
		}
	}
	replyJSON(w, worlds)
}

func fortunesHandler(w http.ResponseWriter, r *http.Request) {
	rows, err := pool.Query(r.Context(), "fortuneSelect")
	if err != nil {
		fail(w, err)
		return
	}
	fortunes := make([]fortune, 0, 16)
	for rows.Next() {
		var f fortune
		if err := rows.Scan(&f.ID, &f.Message); err != nil {
			rows.Close()
			fail(w, err)
			return
		}
		fortunes = append(fortunes, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		fail(w, err)
		return
	}
	fortunes = append(fortunes, fortune{Message: extraFortune})
	sort.Slice(fortunes, func(i, j int) bool { return fortunes[i].Message < fortunes[j].Message })
	var buf bytes.Buffer
	if err := fortuneTmpl.Execute(&buf, fortunes); err != nil {
		fail(w, err)
		return
	}
	reply(w, "text/html; charset=utf-8", buf.Bytes())
}

func updatesHandler(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	worlds := make([]world, queriesParam(r))
	for i := range worlds {
		if err := oneWorld(ctx, &worlds[i]); err != nil {
			fail(w, err)
			return
		}
		worlds[i].RandomNumber = randomID()
	}
	// The answer keeps the order the rows were read in; the writes go in
	// id order.
	sorted := make([]world, len(worlds))
	copy(sorted, worlds)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	batch := &pgx.Batch{}
	for _, wd := range sorted {
		batch.Queue("worldUpdate", wd.RandomNumber, wd.ID)
	}
	br := pool.SendBatch(ctx, batch)
	for range sorted {
		if _, err := br.Exec(); err != nil {
			br.Close()
			fail(w, err)
			return
		}
	}
	if err := br.Close(); err != nil {
		fail(w, err)
		return
	}
	replyJSON(w, worlds)
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("go techempower: ")
	rand.Seed(time.Now().UnixNano()) // Go 1.19's global source starts at seed 1
	port := "8080"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	if len(os.Args) > 2 {
		if s, _ := strconv.Atoi(os.Args[2]); s > 0 {
			time.AfterFunc(time.Duration(s)*time.Second, func() { os.Exit(0) })
		}
	}
	url := os.Getenv("TE_DB_URL")
	if url == "" {
		url = defaultDBURL
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		log.Fatal(err)
	}
	conns := 4 * runtime.GOMAXPROCS(0)
	if conns < 4 {
		conns = 4
	}
	if s := os.Getenv("TE_POOL"); s != "" {
		if conns, err = strconv.Atoi(s); err != nil || conns < 1 {
			log.Fatalf("TE_POOL=%q: not a positive number", s)
		}
	}
	cfg.MaxConns = int32(conns)
	cfg.MinConns = int32(conns) // connect them all now, not during the first run
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		for name, sql := range map[string]string{
			"worldSelect": worldSelect, "worldUpdate": worldUpdate, "fortuneSelect": fortuneSelect,
		} {
			if _, err := c.Prepare(ctx, name, sql); err != nil {
				return fmt.Errorf("prepare %s: %w", name, err)
			}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	pool, err = pgxpool.ConnectConfig(ctx, cfg)
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	if err := pool.Ping(context.Background()); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", plaintext)
	mux.HandleFunc("/json", jsonHandler)
	mux.HandleFunc("/db", dbHandler)
	mux.HandleFunc("/queries", queriesHandler)
	mux.HandleFunc("/fortunes", fortunesHandler)
	mux.HandleFunc("/updates", updatesHandler)
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("go techempower: listening on 127.0.0.1:%s, %d database connections\n", port, conns)
	log.Fatal(http.Serve(l, mux))
}
