package cosmos_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/cosmos"
	"github.com/hasplock/hasp/service"
)

// A service over a Cosmos DB container, authenticated with Entra ID: no
// key, so DefaultAzureCredential finds the managed identity (or the Azure
// CLI login on a laptop). The identity needs the Cosmos DB Built-in Data
// Contributor role.
func ExampleNew() {
	p, err := cosmos.New(cosmos.Config{
		Endpoint:  "https://myaccount.documents.azure.com:443/",
		Database:  "hasp",
		Container: "locks",
	})
	if err != nil {
		log.Fatal(err)
	}
	svc := service.New(p)
	defer svc.Close()
	lease, err := svc.Acquire(context.Background(), lock.AcquireRequest{Name: "nightly-report", TTL: time.Minute, Wait: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("fencing token", lease.FencingToken)
}
