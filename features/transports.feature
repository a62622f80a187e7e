Feature: Transports: IPv6 and TLS
  The same call over IPv6 and over TLS (sips:), each against a server started for the scenario (the run's
  kind of server, on ::1 or with a TLS listener).

  @ipv6
  Scenario: A call over IPv6
    Given the server listens on IPv6
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice pings the server
    When Alice calls Bob
    Then Bob receives an INVITE with IN IP6 ::1 in the body
    And Bob answers the phone
    And Alice and Bob talk for 2 seconds
    And Alice and Bob hear each other
    Then Alice hangs up the phone
    And Bob receives BYE

  @tls
  Scenario: A call over TLS
    Given the server listens on TLS
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Bob receives an INVITE with header Contact containing sips:
    And Bob answers the phone
    And Alice and Bob talk for 2 seconds
    Then Bob hangs up the phone
    And Alice receives BYE
