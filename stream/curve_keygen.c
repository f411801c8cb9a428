/*  curve_keygen — writes a fresh CURVE keypair as czmq certificates.

      curve_keygen PATH [NAME]

    Writes PATH (the public certificate, to hand out) and PATH_secret (the
    keypair, mode 0600, for the service's own --curve-dir), as zcert_save
    does; NAME goes into the metadata. scripts/certs calls it to build a
    deployment, so a host needs no Python to make keys. Exits 0, 1 when a
    file cannot be written, 2 on bad usage.
*/
#include <czmq.h>
#include <sys/stat.h>

int main (int argc, char *argv[])
{
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf (stderr, "usage: curve_keygen PATH [NAME]\n"
                         "  writes PATH (public) and PATH_secret (keypair, mode 0600)\n");
        return 2;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "curve_keygen: zcert_new failed\n");
        return 1;
    }
    if (argc == 3)
        zcert_set_meta (cert, "name", "%s", argv[2]);
    //  zcert_save_secret creates the file with the process umask: keep
    //  others out from the start, not by a chmod after.
    mode_t mask = umask (077);
    int rc = zcert_save (cert, argv[1]);
    umask (mask);
    if (rc == 0)
        rc = chmod (argv[1], 0644);
    if (rc)
        fprintf (stderr, "curve_keygen: cannot write \"%s\" and \"%s_secret\"\n", argv[1],
                 argv[1]);
    else
        printf ("%s\n", zcert_public_txt (cert));
    zcert_destroy (&cert);
    return rc ? 1 : 0;
}
