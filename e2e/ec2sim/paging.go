package ec2sim

import (
	"encoding/base64"
	"strings"
)

// pageRequest is MaxResults/NextToken of a Describe call. Tokens carry the
// last id returned, so paging stays correct while resources come and go.
type pageRequest struct {
	max   int
	after string
}

const tokenPrefix = "ec2sim:"

// parsePaging validates MaxResults (EC2 accepts 5–1000) and NextToken, and
// refuses MaxResults together with explicit ids, as EC2 does.
func parsePaging(p params, idsGiven bool) (pageRequest, error) {
	var pr pageRequest
	max, set, err := p.integer("MaxResults")
	if err != nil {
		return pr, err
	}
	if set {
		if idsGiven {
			return pr, invalidCombination("The parameter MaxResults cannot be used with the parameter specifying resource ids")
		}
		if max < 5 || max > 1000 {
			return pr, invalidValue("Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", max)
		}
		pr.max = max
	}
	if tok := p.str("NextToken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		after, ok := strings.CutPrefix(string(raw), tokenPrefix)
		if err != nil || !ok || after == "" {
			return pr, clientError("InvalidPaginationToken", "The pagination token '%s' is invalid or has expired.", tok)
		}
		pr.after = after
	}
	return pr, nil
}

// page cuts the ids (sorted) to one page and returns the token for the next.
func (pr pageRequest) page(ids []string) (out []string, next string) {
	start := 0
	if pr.after != "" {
		for start < len(ids) && ids[start] <= pr.after {
			start++
		}
	}
	ids = ids[start:]
	if pr.max == 0 || len(ids) <= pr.max {
		return ids, ""
	}
	ids = ids[:pr.max]
	return ids, base64.RawURLEncoding.EncodeToString([]byte(tokenPrefix + ids[len(ids)-1]))
}
