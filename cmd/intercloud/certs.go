package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intercloud/intercloud/certs"
	"github.com/intercloud/intercloud/config"
	"github.com/intercloud/intercloud/topology"
)

const certsUsage = `Usage:
  intercloud certs init                make the CA and a certificate per role (aws, azure, global) that are missing
  intercloud certs rotate [--new-ca]   replace every role's certificate (and with --new-ca the CA, trusted next to the old one);
                                       running processes take the new files for new connections, without a restart
  intercloud certs prune               keep only the newest CA in ca.crt (after a --new-ca rotation has reached every process)
  intercloud certs list                show each certificate: role, names, expiry
`

// certsCmd makes and rotates the TLS certificates of tls.dir.
type certsCmd struct {
	newCA bool
}

func (c *certsCmd) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.newCA, "new-ca", false, "rotate: make a new CA too")
}

func (c *certsCmd) run(_ context.Context, e *env, args []string) error {
	if len(args) != 1 {
		fmt.Fprint(e.stderr, certsUsage)
		return &exitError{code: 2, err: errors.New("certs: say init, rotate, prune or list")}
	}
	cfg, err := config.Load(e.configPath, e.dataDir)
	if err != nil {
		return err
	}
	if err := topology.CheckDataDir(cfg.DataDir); err != nil {
		return err
	}
	if cfg.TLS.Cert != "" {
		return errors.New("certs: tls.cert is set: that certificate is managed outside intercloud")
	}
	dir := cfg.TLS.Dir
	var made certs.Made
	switch args[0] {
	case "init":
		made, err = topology.InitCerts(cfg)
	case "rotate":
		made, err = topology.RotateCerts(cfg, c.newCA)
	case "prune":
		err = certs.Prune(dir)
	case "list":
		return listCerts(e, dir)
	default:
		fmt.Fprint(e.stderr, certsUsage)
		return &exitError{code: 2, err: fmt.Errorf("certs: unknown action %q", args[0])}
	}
	if err != nil {
		return err
	}
	if made.CA {
		fmt.Fprintf(e.stderr, "made a CA in %s\n", filepath.Join(dir, certs.CACert))
	}
	for _, r := range made.Roles {
		fmt.Fprintf(e.stderr, "made the %s certificate %s\n", r, certs.CertFile(dir, r))
	}
	if !made.CA && len(made.Roles) == 0 && args[0] == "init" {
		fmt.Fprintf(e.stderr, "every certificate is in %s already\n", dir)
	}
	return nil
}

func listCerts(e *env, dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, "*.crt"))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tSUBJECT\tNAMES\tNOT AFTER")
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return err
		}
		for {
			var block *pem.Block
			block, b = pem.Decode(b)
			if block == nil {
				break
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			sans := append([]string{}, c.DNSNames...)
			for _, ip := range c.IPAddresses {
				sans = append(sans, ip.String())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", filepath.Base(n), c.Subject.CommonName, strings.Join(sans, ","), c.NotAfter.UTC().Format(time.RFC3339))
			if filepath.Base(n) != certs.CACert {
				break // the chain after the leaf is the CA
			}
		}
	}
	return tw.Flush()
}
