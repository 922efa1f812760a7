/**
 * Public suffixes a wildcard may not cover. A compact, embedded stand-in for the Public
 * Suffix List: every single label (`com`, `io`, `internal`) counts as a suffix, plus the
 * common multi-label suffixes below, under which anyone can register or host a site.
 * `*.co.uk` or `*.github.io` would let a sandbox reach any stranger's site there.
 */

const MULTI_LABEL = new Set(
  [
    // Country registries' second levels.
    "co.uk org.uk me.uk ltd.uk plc.uk net.uk ac.uk gov.uk sch.uk nhs.uk police.uk",
    "com.au net.au org.au edu.au gov.au asn.au id.au co.nz net.nz org.nz ac.nz govt.nz",
    "co.jp ne.jp or.jp ac.jp go.jp gr.jp ad.jp ed.jp lg.jp co.kr ne.kr or.kr ac.kr go.kr",
    "com.cn net.cn org.cn gov.cn edu.cn ac.cn com.hk net.hk org.hk edu.hk gov.hk",
    "com.tw net.tw org.tw edu.tw gov.tw com.sg net.sg org.sg edu.sg gov.sg com.my",
    "co.in net.in org.in firm.in gen.in ind.in ac.in edu.in gov.in res.in",
    "co.id or.id ac.id go.id web.id co.th in.th ac.th go.th com.ph com.vn com.pk",
    "co.il org.il ac.il gov.il com.tr org.tr net.tr edu.tr gov.tr com.sa com.eg",
    "co.za org.za net.za ac.za gov.za com.ng co.ke",
    "com.br net.br org.br edu.br gov.br com.mx net.mx org.mx edu.mx gob.mx",
    "com.ar gob.ar com.co com.pe com.es org.es nom.es gob.es edu.es",
    "com.pl net.pl org.pl co.at or.at ac.at gv.at com.ua",
    // Hosting platforms whose customers get subdomains (the list's private section).
    "github.io githubusercontent.com gitlab.io pages.dev workers.dev r2.dev",
    "herokuapp.com appspot.com blogspot.com firebaseapp.com web.app",
    "netlify.app vercel.app now.sh surge.sh fly.dev onrender.com glitch.me repl.co readthedocs.io",
    "amazonaws.com s3.amazonaws.com cloudfront.net elasticbeanstalk.com",
    "azurewebsites.net cloudapp.net azurestaticapps.net blob.core.windows.net",
    "ngrok.io ngrok-free.app ngrok.app duckdns.org ddns.net dyndns.org no-ip.org",
  ].flatMap((line) => line.split(" ")),
);

/** The longest public suffix of a canonical host name (at least its last label). */
export function publicSuffix(name: string): string {
  const labels = name.split(".");
  for (let i = 0; i < labels.length - 1; i++) {
    const candidate = labels.slice(i).join(".");
    if (MULTI_LABEL.has(candidate)) return candidate;
  }
  return labels[labels.length - 1]!;
}
