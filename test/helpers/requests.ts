export async function postAd(url: string, body: Uint8Array, contentType = 'application/x-flatbuffers'): Promise<Response> {
  return fetch(`${url}/v1/ads`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
}
