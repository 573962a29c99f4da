package quality

import "math"

// Metrics are the mean figures of a list of ranked answers.
type Metrics struct {
	N      int     // questions
	Hit1   float64 // share of questions with an answer first
	Hit5   float64 // … with an answer in the top 5
	Hit10  float64 // … in the top 10
	MRR    float64 // mean of 1/rank of the first answer in the top 10 (0 if none)
	NDCG10 float64 // mean nDCG@10, binary gains
	Hits5  int     // questions with an answer in the top 5
}

// score adds one question's ranking (document ids, best first) to the sums.
func (m *Metrics) add(ranked []string, answers []string) {
	rel := make(map[string]bool, len(answers))
	for _, a := range answers {
		rel[a] = true
	}
	m.N++
	first := 0
	var dcg float64
	for i, id := range ranked[:min(10, len(ranked))] {
		if !rel[id] {
			continue
		}
		if first == 0 {
			first = i + 1
		}
		dcg += 1 / math.Log2(float64(i+2))
	}
	var ideal float64
	for i := range min(10, len(rel)) {
		ideal += 1 / math.Log2(float64(i+2))
	}
	if first == 1 {
		m.Hit1++
	}
	if first >= 1 && first <= 5 {
		m.Hit5++
		m.Hits5++
	}
	if first >= 1 {
		m.Hit10++
		m.MRR += 1 / float64(first)
	}
	m.NDCG10 += dcg / ideal
}

// mean turns the sums into means.
func (m *Metrics) mean() {
	if m.N == 0 {
		return
	}
	n := float64(m.N)
	m.Hit1 /= n
	m.Hit5 /= n
	m.Hit10 /= n
	m.MRR /= n
	m.NDCG10 /= n
}
