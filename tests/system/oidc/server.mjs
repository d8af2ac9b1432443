// A real OpenID Connect provider for Lethe's end-to-end test: panva's oidc-provider with its
// development sign-in pages (any name and password are accepted). One client, Lethe, and
// every account gets the groups in LETHE_TEST_GROUPS through the "groups" scope.
//
//   node server.mjs <port> <client id> <client secret> <redirect uri> <groups, comma-separated>
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, groups] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'RS256',
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['lethe-test-only'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.test`,
          email_verified: true,
          preferred_username: id,
          name: id,
          groups: groups.split(',').filter(Boolean),
        };
      },
    };
  },
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
