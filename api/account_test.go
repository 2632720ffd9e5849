package api

import (
	"maps"
	"testing"
	"time"
)

// The zones travel with the count, and a ConfigMap written before them
// still parses, with no zones.
func TestAccountDataCarriesTheZones(t *testing.T) {
	a := Account{Quota: 5, Allocated: 2, CountedAt: time.Unix(1_700_000_000, 0).UTC(), Region: "us-east-1",
		Zones: map[string]string{"us-east-1a": "us-east-1", "us-east-1-bos-1a": "us-east-1-bos-1"}}
	got, ok := ParseAccount(a.Data())
	if !ok || got.Quota != 5 || got.Region != "us-east-1" || !maps.Equal(got.Zones, a.Zones) || !got.SameZones(a) {
		t.Fatalf("parsed %+v (%t), want %+v", got, ok, a)
	}
	old := a.Data()
	delete(old, AccountKeyBorderGroups)
	delete(old, AccountKeyRegion)
	if got, ok := ParseAccount(old); !ok || got.Zones != nil || got.SameZones(a) {
		t.Errorf("an older ConfigMap parsed as %+v (%t)", got, ok)
	}
	old[AccountKeyBorderGroups], old[AccountKeyRegion] = "not json", "us-east-1"
	if got, ok := ParseAccount(old); !ok || got.Zones != nil {
		t.Errorf("a malformed zone map parsed as %+v (%t)", got, ok)
	}
	if !SameBorderGroup("", "us-east-1") || !SameBorderGroup("us-east-1", "") || SameBorderGroup("us-east-1", "us-east-1-bos-1") {
		t.Error("SameBorderGroup: an unknown group suits, two known ones must be equal")
	}
}
