package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func (a *app) installBinaryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "install-binary DIR",
		Short: "Copy this binary to DIR/schemahook, so that another image can run it",
		Long: `install-binary copies the running executable to DIR/schemahook (mode 0755). The chart runs it in
an init container from the schemahook image to put the static binary into an emptyDir shared with
a container of your application image, which then runs it with --migrations pointing at the
migrations the image holds. The binary copies itself, so neither image needs a shell or cp.`,
		Example: `  schemahook install-binary /schemahook-bin
  /schemahook-bin/schemahook update --migrations /app/migrations`,
		Args: exactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			dst, err := installBinary(args[0])
			if err != nil {
				return err
			}
			a.log.Info("binary installed", "path", dst)
			return nil
		},
	}
}

// installBinary copies os.Executable into dir/schemahook through a temporary file and a rename,
// so that a container never sees (and runs) a partly written binary.
func installBinary(dir string) (string, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", usagef("install-binary %q: not a directory; create it (in a pod: an emptyDir volume mounted there)", dir)
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding this executable: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("reading this executable: %w", err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "schemahook")
	tmp, err := os.CreateTemp(dir, ".schemahook-*")
	if err != nil {
		return "", fmt.Errorf("writing into %s: %w (is the volume writable by this user?)", dir, err)
	}
	_, err = io.Copy(tmp, src)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return "", errors.Join(fmt.Errorf("copying the binary to %s: %w", dst, err), os.Remove(tmp.Name()))
	}
	return dst, nil
}
