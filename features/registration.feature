Feature: Registration and digest authentication
  REGISTER, and 401/407 challenges answered with digest credentials (RFC 3261 22, RFC 7616/8760). The
  scenarios that need a challenging server start their own (the run's kind of server, with accounts).

  Scenario: Registering with the server
    Given Carol uses HeronBase phone without registering
    Then Carol is not registered
    When Carol registers
    Then Carol is registered
    When Carol unregisters
    Then Carol is not registered

  @auth
  Scenario: REGISTER is challenged and the phone authenticates
    Given the server requires digest authentication
      | user  | password     |
      | alice | alice-secret |
      | bob   | bob-secret   |
    Given Alice uses Squirrel350 phone
    Then Alice is challenged for REGISTER and authenticates
    And Alice is registered

  @auth
  Scenario: Challenged with MD5, then a message between the two
    Given the server requires digest authentication with MD5
      | user  | password   |
      | bob   | bob-secret |
      | carol | carol-pw   |
    Given Bob uses Chipmunk5000 phone
    Given Carol uses HeronBase phone
    Then Bob is challenged for REGISTER and authenticates
    And Carol is challenged for REGISTER and authenticates
    When Bob sends the message "registered" to Carol
    Then Carol receives the message "registered"

  @auth
  Scenario: INVITE is challenged and the call goes through
    Given the server requires digest authentication
      | user  | password     |
      | alice | alice-secret |
      | bob   | bob-secret   |
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Alice is challenged for INVITE and authenticates
    And Bob answers the phone
    And Alice and Bob talk for 2 seconds
    Then Alice hangs up the phone
    And Bob receives BYE
