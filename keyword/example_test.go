package keyword_test

import (
	"bytes"
	"fmt"

	"github.com/nexus-mem/nexus/keyword"
)

func ExampleIndex_Search() {
	docs := []string{
		"Decision: store passwords with bcrypt, cost 12.",
		"The login page returns 500 when the password is empty.",
		"Fixed the login bug: empty passwords are rejected before hashing.",
	}
	x := keyword.New(keyword.Config{})
	for i, d := range docs {
		if err := x.Add(uint32(i), d); err != nil {
			panic(err)
		}
	}
	res, err := x.Search("login passwords", 10, keyword.Or, nil)
	if err != nil {
		panic(err)
	}
	for _, r := range res {
		fmt.Printf("%d %.3f %v %q\n", r.Key, r.Score, r.Matched, keyword.Snippet(docs[r.Key], r.Matched, 40))
	}
	// Output:
	// 1 0.580 [login passwords] "The login page returns 500 when the…"
	// 2 0.580 [login passwords] "Fixed the login bug: empty passwords…"
	// 0 0.145 [passwords] "Decision: store passwords with bcrypt,…"
}

func ExampleRead() {
	x := keyword.New(keyword.Config{})
	_ = x.Add(7, "merge the pack files at startup")
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		panic(err)
	}
	y, err := keyword.Read(&buf)
	if err != nil {
		panic(err)
	}
	res, _ := y.Search("pack", 1, keyword.And, nil)
	fmt.Println(res[0].Key, res[0].Matched)
	// Output: 7 [pack]
}
