package cost

import (
	"bytes"
	_ "embed"
)

//go:embed demo_catalogue.yaml
var demoCatalogue []byte

// DemoCatalogue is an illustrative catalogue of common GPU instance types on
// AWS, GCP and Azure, for --demo and as an example of the format.
func DemoCatalogue() *Catalogue {
	c, err := ParseCatalogue(bytes.NewReader(demoCatalogue))
	if err != nil {
		// The file is embedded and covered by a test.
		panic("cost: embedded demo catalogue: " + err.Error())
	}
	return c
}
