// Command kubectl-spectrum exports the Spectrum applications a Cloudflare
// zone already has as SpectrumApp manifests, ready for kubectl apply, the way
// cf-terraforming does for Terraform. On the PATH it is also a kubectl
// plugin: kubectl spectrum export ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cloudflare-operator/spectrum-operator/api/v1alpha1"
	"github.com/cloudflare-operator/spectrum-operator/internal/export"
	"github.com/cloudflare-operator/spectrum-operator/internal/spectrum"
)

// tokenVariable holds the API token. It is never a flag: a flag's value
// shows in ps and in shell history.
const tokenVariable = "CLOUDFLARE_API_TOKEN"

const usage = `kubectl-spectrum: Cloudflare Spectrum applications as SpectrumApp resources.

Usage:
  kubectl-spectrum export --zone ZONE_ID [--zone ZONE_ID ...] [flags]
  kubectl spectrum export ...                     (as a kubectl plugin)

Export prints a SpectrumApp for every Spectrum application of the zones, with
every field Cloudflare holds, so that the operator adopts each one unchanged:

  export CLOUDFLARE_API_TOKEN=...                 # Zone > Spectrum > Read or Edit
  kubectl-spectrum export --zone 023e105f4ecef8ad9ca31a8372d0c353 \
      --reconcile-policy observe | kubectl apply -f -

The API token is read from the CLOUDFLARE_API_TOKEN environment variable
only. Applications that cannot be read are skipped with a warning on stderr.
The exit status is 1 when a zone cannot be listed (credentials, network), and
then nothing is printed; 2 on a usage error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command; it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "export":
		return runExport(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "kubectl-spectrum: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// zones is a repeatable --zone flag; a comma-separated list works too.
type zones []string

func (z *zones) String() string { return strings.Join(*z, ",") }

func (z *zones) Set(value string) error {
	for _, zone := range strings.Split(value, ",") {
		if zone = strings.TrimSpace(zone); zone != "" {
			*z = append(*z, zone)
		}
	}
	return nil
}

func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("kubectl-spectrum export", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var opts export.Options
	var deletionPolicy string
	flags.Var((*zones)(&opts.Zones), "zone", "zone ID to export (repeat for several zones)")
	flags.StringVar(&opts.Namespace, "namespace", "", "namespace written into every object (default: none, so kubectl apply uses its current namespace)")
	flags.StringVar(&opts.Secret, "secret", export.DefaultSecret, "credentials Secret every object names in spec.credentialsRef")
	flags.StringVar(&opts.ReconcilePolicy, "reconcile-policy", "",
		"write the "+v1alpha1.ReconcilePolicyAnnotation+" annotation: observe, manage or skip (default: none, the operator manages)")
	flags.StringVar(&deletionPolicy, "deletion-policy", "", "write spec.deletionPolicy: Delete or Orphan (default: none, which is Delete)")
	apiURL := flags.String("api-url", spectrum.DefaultBaseURL, "Cloudflare API base URL")
	flags.Usage = func() {
		fmt.Fprint(stderr, usage, "\nFlags of export:\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "kubectl-spectrum export: unexpected argument %q (zones are given with --zone)\n", flags.Arg(0))
		return 2
	}
	opts.DeletionPolicy = v1alpha1.DeletionPolicy(deletionPolicy)
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "kubectl-spectrum export: %v\n", err)
		return 2
	}
	token := strings.TrimSpace(getenv(tokenVariable))
	if token == "" {
		fmt.Fprintf(stderr, "kubectl-spectrum export: %s is not set: export an API token with Zone > Spectrum > Read or Edit on the zones\n", tokenVariable)
		return 1
	}

	client := spectrum.NewClient(spectrum.Options{BaseURL: *apiURL, Token: token, UserAgent: "kubectl-spectrum"})
	if err := export.Run(ctx, client, opts, stdout, stderr); err != nil {
		// The client redacts the token from what Cloudflare echoes; this is
		// the last line of defence for anything else that might carry it.
		fmt.Fprintf(stderr, "kubectl-spectrum export: %s\n", strings.ReplaceAll(err.Error(), token, "[REDACTED]"))
		return 1
	}
	return 0
}
